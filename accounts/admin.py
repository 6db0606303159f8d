from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import ValidationError
from django.db.models import Count, IntegerField, OuterRef, Subquery
from django.utils.html import format_html

from accounts.models import CustomerAccount, User
from orders.admin import orders_url
from orders.models import Order


@admin.register(User)
class BackOfficeUserAdmin(UserAdmin):
    list_display = ["username", "email", "first_name", "last_name", "roles", "is_active", "last_login"]
    list_filter = ["groups", "is_active", "is_superuser"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("groups")

    @admin.display(description="roles")
    def roles(self, obj: User) -> str:
        return ", ".join(sorted(group.name for group in obj.groups.all()))


class CustomerAccountForm(forms.ModelForm):
    class Meta:
        model = CustomerAccount
        fields = ["external_id", "name", "segment", "industry", "brand_mode", "preferred_brands", "excluded_brands"]

    def clean(self):
        cleaned = super().clean()
        both = set(cleaned.get("preferred_brands") or []) & set(cleaned.get("excluded_brands") or [])
        if both:
            names = ", ".join(sorted(brand.name for brand in both))
            raise ValidationError(f"A brand cannot be both preferred and excluded: {names}.")
        return cleaned


@admin.register(CustomerAccount)
class CustomerAccountAdmin(admin.ModelAdmin):
    """B2B customer accounts: created by the orders import from their account id; segment,
    industry and brand preferences are kept here."""

    form = CustomerAccountForm
    list_display = ["external_id", "name", "segment", "industry", "brand_mode", "orders"]
    list_filter = ["segment", "brand_mode"]
    search_fields = ["external_id", "name"]
    search_help_text = "Account id or name (or part of one)."
    filter_horizontal = ["preferred_brands", "excluded_brands"]
    readonly_fields = ["created_at"]
    list_per_page = 100
    fieldsets = [
        (None, {"fields": ["external_id", "name", "segment", "industry"]}),
        ("Brands", {"fields": ["brand_mode", "preferred_brands", "excluded_brands"]}),
        ("Created", {"fields": ["created_at"]}),
    ]

    def get_queryset(self, request):
        orders = Order.objects.filter(account=OuterRef("pk")).order_by().values("account")
        count = Subquery(orders.annotate(n=Count("id")).values("n"), output_field=IntegerField())
        return super().get_queryset(request).annotate(order_count=count)

    @admin.display(description="orders", ordering="order_count")
    def orders(self, obj: CustomerAccount) -> str:
        if not obj.order_count:
            return "0"
        return format_html('<a href="{}">{}</a>', orders_url(obj), obj.order_count)
