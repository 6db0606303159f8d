"""The webshop API (/api/v1/): read-only views of what is published, and the event intake."""
