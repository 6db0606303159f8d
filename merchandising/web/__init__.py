"""Views of the back-office pages: parse the request, call a service or selector, render."""
