from __future__ import annotations

import json

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from audit.forms import VersionedAdminMixin, VersionedModelForm
from audit.models import Via
from catalog.exports import products_export_stream
from catalog.imports import ImportResult
from catalog.models import (
    AttributeDefinition,
    Brand,
    Category,
    ChangeSource,
    Product,
    ProductChange,
    ProductImport,
    ProductStatus,
)
from catalog.services import (
    ImportAlreadyHandled,
    attribute_definition_save,
    attribute_definitions_delete,
    attributes_clean,
    brand_save,
    brands_delete,
    categories_delete,
    category_check_parent,
    category_save,
    product_import_apply,
    product_import_preview,
    product_save,
    products_delete,
    products_set_excluded,
    products_set_status,
)
from config.admin_site import ReadOnlyAdminMixin

PREVIEW_ERRORS_SHOWN = 500


class BrandAdminForm(VersionedModelForm):
    class Meta:
        model = Brand
        fields = ["name"]


@admin.register(Brand)
class BrandAdmin(VersionedAdminMixin, admin.ModelAdmin):
    form = BrandAdminForm
    list_display = ["name", "created_at"]
    search_fields = ["name"]

    def save_model(self, request, obj, form, change):
        brand_save(brand=obj, actor=request.user, expected_version=self.expected_version(form))

    def delete_model(self, request, obj):
        brands_delete(brands=Brand.objects.filter(pk=obj.pk), actor=request.user)

    def delete_queryset(self, request, queryset):
        brands_delete(brands=queryset, actor=request.user, via=Via.BULK)



class CategoryAdminForm(VersionedModelForm):
    class Meta:
        model = Category
        fields = ["name", "parent"]

    def clean_parent(self):
        parent = self.cleaned_data.get("parent")
        try:
            category_check_parent(category=self.instance, parent=parent)
        except ValidationError as exc:
            raise ValidationError(exc.message_dict["parent"]) from None
        return parent


@admin.register(Category)
class CategoryAdmin(VersionedAdminMixin, admin.ModelAdmin):
    form = CategoryAdminForm
    list_display = ["path", "name", "parent"]
    list_select_related = ["parent"]
    search_fields = ["path"]
    autocomplete_fields = ["parent"]
    readonly_fields = ["path"]

    def save_model(self, request, obj, form, change):
        category_save(category=obj, actor=request.user, expected_version=self.expected_version(form))

    def delete_model(self, request, obj):
        categories_delete(categories=Category.objects.filter(pk=obj.pk), actor=request.user)

    def delete_queryset(self, request, queryset):
        categories_delete(categories=queryset, actor=request.user, via=Via.BULK)


@admin.register(AttributeDefinition)
class AttributeDefinitionAdmin(admin.ModelAdmin):
    list_display = ["code", "label", "type", "unit"]
    list_filter = ["type"]
    search_fields = ["code", "label"]

    def save_model(self, request, obj, form, change):
        attribute_definition_save(definition=obj, actor=request.user)

    def delete_model(self, request, obj):
        attribute_definitions_delete(definitions=AttributeDefinition.objects.filter(pk=obj.pk), actor=request.user)

    def delete_queryset(self, request, queryset):
        attribute_definitions_delete(definitions=queryset, actor=request.user, via=Via.BULK)


class ProductAdminForm(VersionedModelForm):
    class Meta:
        model = Product
        fields = [
            "sku",
            "name",
            "brand",
            "category",
            "description",
            "unit_price",
            "currency",
            "pack_quantity",
            "unit",
            "base",
            "status",
            "exclude_from_recommendations",
            "attributes",
        ]

    def clean_attributes(self):
        try:
            return attributes_clean(self.cleaned_data.get("attributes") or {})
        except ValidationError as exc:
            raise ValidationError(exc.message_dict["attributes"]) from None


class VariantInline(admin.TabularInline):
    model = Product
    fk_name = "base"
    verbose_name = "pack variant"
    verbose_name_plural = "pack variants"
    fields = ["variant", "name", "pack_quantity", "unit", "unit_price", "per_unit", "status"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True
    ordering = ["pack_quantity", "sku"]

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="SKU")
    def variant(self, obj: Product) -> str:
        return obj.sku

    @admin.display(description="price per unit")
    def per_unit(self, obj: Product) -> str:
        return f"{obj.price_per_unit} {obj.currency}/{obj.unit}"


class ProductChangeInline(admin.TabularInline):
    model = ProductChange
    verbose_name = "change"
    verbose_name_plural = "change history"
    fields = ["changed_at", "actor", "source", "reference", "what"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("actor")

    @admin.display(description="what changed")
    def what(self, obj: ProductChange) -> str:
        return f"{obj.get_action_display()}: {obj.summary}"


class ImportUploadForm(forms.Form):
    file = forms.FileField(help_text="Products CSV, UTF-8, with a header row (see the catalog guide).")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["file"].help_text += f" At most {settings.MAX_UPLOAD_MB} MB."

    def clean_file(self):
        upload = self.cleaned_data["file"]
        # A bigger request is refused unread by RequestSizeLimitMiddleware (413); this covers a
        # form bound to a file by other means.
        if upload.size > settings.MAX_UPLOAD_BYTES:
            raise ValidationError(f"The file is larger than {settings.MAX_UPLOAD_MB} MB; use the command.")
        return upload


@admin.register(Product)
class ProductAdmin(VersionedAdminMixin, admin.ModelAdmin):
    form = ProductAdminForm
    list_display = [
        "sku",
        "name",
        "brand",
        "category",
        "unit_price",
        "pack",
        "status",
        "exclude_from_recommendations",
        "base_sku",
    ]
    list_display_links = ["sku", "name"]
    list_filter = ["status", "exclude_from_recommendations", "brand", "category"]
    list_select_related = ["brand", "category", "base"]
    search_fields = ["sku", "name"]
    autocomplete_fields = ["brand", "category", "base"]
    readonly_fields = ["created_at", "updated_at"]
    list_per_page = 100
    actions = ["activate", "discontinue", "exclude_from_recommendations_action", "include_in_recommendations_action"]
    inlines = [VariantInline, ProductChangeInline]
    fieldsets = [
        (None, {"fields": ["sku", "name", "brand", "category", "description"]}),
        ("Price and pack", {"fields": ["unit_price", "currency", "pack_quantity", "unit", "base"]}),
        ("Status", {"fields": ["status", "exclude_from_recommendations"]}),
        ("Attributes", {"fields": ["attributes"], "description": 'Typed values, e.g. {"length_mm": 40}.'}),
        ("Timestamps", {"fields": ["created_at", "updated_at"]}),
    ]

    @admin.display(description="pack", ordering="pack_quantity")
    def pack(self, obj: Product) -> str:
        return f"{obj.pack_quantity} {obj.unit}"

    @admin.display(description="base product", ordering="base__sku")
    def base_sku(self, obj: Product) -> str:
        return obj.base.sku if obj.base_id else ""

    def get_search_results(self, request, queryset, search_term):
        queryset, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        # The base-product autocomplete offers only products that can be a base.
        if request.GET.get("model_name") == "product" and request.GET.get("field_name") == "base":
            queryset = queryset.filter(base__isnull=True)
        return queryset, may_have_duplicates

    def save_model(self, request, obj, form, change):
        product_save(
            product=obj, actor=request.user, source=ChangeSource.ADMIN, expected_version=self.expected_version(form)
        )

    def delete_model(self, request, obj):
        products_delete(products=Product.objects.filter(pk=obj.pk), actor=request.user)

    def delete_queryset(self, request, queryset):
        products_delete(products=queryset, actor=request.user)

    # --- bulk actions -----------------------------------------------------------------------
    def _report(self, request, queryset, changed: int, verb: str, already: str) -> None:
        total = queryset.count()
        self.message_user(
            request,
            f"{verb} {changed} of {total} selected products ({total - changed} {already}).",
            messages.SUCCESS if changed else messages.WARNING,
        )

    @admin.action(description="Activate selected products", permissions=["change"])
    def activate(self, request, queryset):
        changed = products_set_status(products=queryset, status=ProductStatus.ACTIVE, actor=request.user)
        self._report(request, queryset, changed, "Activated", "were already active")

    @admin.action(description="Discontinue selected products", permissions=["change"])
    def discontinue(self, request, queryset):
        changed = products_set_status(products=queryset, status=ProductStatus.DISCONTINUED, actor=request.user)
        self._report(request, queryset, changed, "Discontinued", "were already discontinued")

    @admin.action(description="Exclude selected products from recommendations", permissions=["change"])
    def exclude_from_recommendations_action(self, request, queryset):
        changed = products_set_excluded(products=queryset, excluded=True, actor=request.user)
        self._report(request, queryset, changed, "Excluded", "were already excluded")

    @admin.action(description="Include selected products in recommendations again", permissions=["change"])
    def include_in_recommendations_action(self, request, queryset):
        changed = products_set_excluded(products=queryset, excluded=False, actor=request.user)
        self._report(request, queryset, changed, "Included", "were already included")

    # --- import and export pages ---------------------------------------------------------------
    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("export/", wrap(self.export_view), name="catalog_product_export"),
            path("import/", wrap(self.import_view), name="catalog_product_import"),
            path("import/<int:pk>/", wrap(self.import_preview_view), name="catalog_product_import_preview"),
            *super().get_urls(),
        ]

    def _can_import(self, request) -> bool:
        return self.has_add_permission(request) and self.has_change_permission(request)

    def export_view(self, request):
        """The changelist's current selection (search and filters) as CSV."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            # What the changelist itself does with a filter it does not know.
            return HttpResponseRedirect(reverse("admin:catalog_product_changelist") + "?e=1")
        queryset = changelist.get_queryset(request)
        stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
        response = StreamingHttpResponse(
            products_export_stream(queryset=queryset), content_type="text/csv; charset=utf-8"
        )
        response["Content-Disposition"] = f'attachment; filename="products-{stamp}.csv"'
        return response

    def import_view(self, request):
        if not self._can_import(request):
            raise PermissionDenied
        form = ImportUploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            product_import = product_import_preview(file_name=upload.name, content=upload.read(), actor=request.user)
            return HttpResponseRedirect(reverse("admin:catalog_product_import_preview", args=[product_import.pk]))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Import products",
            "form": form,
            "recent_imports": ProductImport.objects.select_related("created_by").defer("content")[:10],
        }
        return TemplateResponse(request, "admin/catalog/product/import_upload.html", context)

    def import_preview_view(self, request, pk: int):
        if not self._can_import(request):
            raise PermissionDenied
        product_import = get_object_or_404(ProductImport.objects.defer("content"), pk=pk)
        if request.method == "POST":
            try:
                result = product_import_apply(product_import=product_import, actor=request.user)
            except ImportAlreadyHandled as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                if result.ok:
                    self.message_user(
                        request,
                        f"Imported {product_import.file_name}: {result.created} created, {result.updated} updated, "
                        f"{result.unchanged} unchanged.",
                        messages.SUCCESS,
                    )
                    return HttpResponseRedirect(reverse("admin:catalog_product_changelist"))
                self.message_user(
                    request, "The import was refused; nothing was written. See the errors below.", messages.ERROR
                )
            return HttpResponseRedirect(request.path)
        result = ImportResult.from_dict(product_import.summary)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Import {product_import.file_name}",
            "product_import": product_import,
            "result": result,
            "errors_shown": result.errors[:PREVIEW_ERRORS_SHOWN],
            "errors_hidden": max(0, len(result.errors) - PREVIEW_ERRORS_SHOWN),
            "sample": [
                {**item, "changes_text": json.dumps(item["changes"], ensure_ascii=False)} for item in result.sample
            ],
            "can_confirm": product_import.status == ProductImport.Status.PREVIEWED and result.ok,
        }
        return TemplateResponse(request, "admin/catalog/product/import_preview.html", context)


@admin.register(ProductChange)
class ProductChangeAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The catalog's audit trail, searchable across products; nobody edits it."""

    list_display = ["changed_at", "product_link", "action", "source", "actor", "reference", "summary"]
    list_filter = ["source", "action"]
    list_select_related = ["actor"]
    search_fields = ["sku", "reference"]
    date_hierarchy = "changed_at"

    @admin.display(description="product", ordering="sku")
    def product_link(self, obj: ProductChange) -> str:
        if obj.product_id is None:
            return f"{obj.sku} (deleted)"
        url = reverse("admin:catalog_product_change", args=[obj.product_id])
        return format_html('<a href="{}">{}</a>', url, obj.sku)


@admin.register(ProductImport)
class ProductImportAdmin(admin.ModelAdmin):
    list_display = ["created_at", "file_name", "status", "created_by", "applied_at", "preview_link"]
    list_filter = ["status"]
    list_select_related = ["created_by"]
    exclude = ["content"]
    readonly_fields = ["file_name", "status", "summary", "created_by", "created_at", "applied_at"]

    def get_queryset(self, request):
        return super().get_queryset(request).defer("content")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="preview")
    def preview_link(self, obj: ProductImport) -> str:
        return format_html('<a href="{}">open</a>', reverse("admin:catalog_product_import_preview", args=[obj.pk]))
