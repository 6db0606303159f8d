from django.db import models
from django.db.models import Q


class Order(models.Model):
    """One order (invoice) from the ERP. Returns and credit notes are not stored as orders:
    they are not co-purchases (see docs/orders.md)."""

    external_id = models.CharField("order id", max_length=64, unique=True)
    account = models.ForeignKey("accounts.CustomerAccount", on_delete=models.PROTECT, related_name="orders")
    ordered_at = models.DateTimeField(db_index=True)
    imported_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-ordered_at"]
        constraints = [models.CheckConstraint(condition=~Q(external_id=""), name="orders_order_external_id_set")]

    def __str__(self) -> str:
        return self.external_id


class OrderLine(models.Model):
    """A product in an order; two lines with the same SKU in one order are merged on import."""

    # No index of their own: the unique (order, product) index serves lookups by order and
    # orders_line_product_idx those by product; two more indexes would only slow the import.
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines", db_index=False)
    product = models.ForeignKey("catalog.Product", on_delete=models.PROTECT, related_name="order_lines", db_index=False)
    quantity = models.PositiveIntegerField()
    unit_price = models.DecimalField(max_digits=12, decimal_places=4)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["order", "product"], name="orders_line_one_per_product"),
            models.CheckConstraint(condition=Q(quantity__gte=1), name="orders_line_quantity_positive"),
            models.CheckConstraint(condition=Q(unit_price__gte=0), name="orders_line_price_not_negative"),
        ]
        indexes = [models.Index(fields=["product"], name="orders_line_product_idx")]

    def __str__(self) -> str:
        return f"{self.order_id}: {self.quantity} x {self.product_id}"
