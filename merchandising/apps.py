from django.apps import AppConfig


class MerchandisingConfig(AppConfig):
    name = "merchandising"
    verbose_name = "Merchandising"
