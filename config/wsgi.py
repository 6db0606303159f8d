import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# A body sent without Content-Length (chunked) is read up to its size limit, then cut off.
from config.middleware import ChunkedBodyLimit  # noqa: E402 (needs the settings set up)

application = ChunkedBodyLimit(get_wsgi_application())
