import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

django_application = get_wsgi_application()  # sets Django up: only then may models be imported

# A body sent without Content-Length (chunked) is read up to its size limit, then cut off.
from config.middleware import ChunkedBodyLimit  # noqa: E402 (imports models: after the set-up)

application = ChunkedBodyLimit(django_application)
