"""The order history in the admin: read-only (orders come from the ERP import only)."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from accounts.models import CustomerAccount
from config.admin_site import ReadOnlyAdminMixin
from orders.models import Order, OrderLine
from orders.selectors import orders_for_list


class AccountFilter(admin.SimpleListFilter):
    """Orders of one customer account, by its account id (``?account=ACME``). An account list
    would be too long to click through, so the filter shows only the chosen account; the
    account column links to it, and the search box finds account ids too."""

    title = "customer account"
    parameter_name = "account"

    def lookups(self, request, model_admin):
        value = self.value()
        if not value:
            return []
        account = CustomerAccount.objects.filter(external_id=value).only("external_id", "name").first()
        return [(value, str(account) if account else value)]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(account__external_id=self.value())
        return queryset


def orders_url(account: CustomerAccount) -> str:
    """The order list filtered to one account."""
    query = urlencode({AccountFilter.parameter_name: account.external_id})
    return f"{reverse('admin:orders_order_changelist')}?{query}"


class OrderLineInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = OrderLine
    fields = ["product", "quantity", "unit_price", "total"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["product__sku"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("product")

    @admin.display(description="line total")
    def total(self, obj: OrderLine):
        return obj.quantity * obj.unit_price


@admin.register(Order)
class OrderAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["external_id", "account_link", "ordered_at", "line_count", "unit_count", "imported_at"]
    list_filter = [AccountFilter, "account__segment", "ordered_at"]
    date_hierarchy = "ordered_at"
    search_fields = ["external_id", "account__external_id"]
    search_help_text = "Order id or account id (or part of one)."
    fields = ["external_id", "account", "ordered_at", "imported_at"]
    readonly_fields = fields
    inlines = [OrderLineInline]
    list_per_page = 100
    # The unfiltered total would be one more COUNT over all orders on every page.
    show_full_result_count = False
    actions = None

    def get_queryset(self, request):
        return orders_for_list()

    @admin.display(description="customer account", ordering="account__external_id")
    def account_link(self, obj: Order) -> str:
        return format_html('<a href="{}" title="orders of this account">{}</a>', orders_url(obj.account), obj.account)

    @admin.display(description="lines", ordering="line_count")
    def line_count(self, obj: Order) -> int:
        return obj.line_count

    @admin.display(description="units", ordering="unit_count")
    def unit_count(self, obj: Order) -> int:
        return obj.unit_count
