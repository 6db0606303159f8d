import contextvars

from axes.admin import AccessFailureLogAdmin
from axes.models import AccessFailureLog
from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth import logout
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.forms import AdminPasswordChangeForm
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count, Exists, IntegerField, OuterRef, Q, Subquery
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template import engines
from django.urls import path, reverse
from django.utils.html import format_html
from django_celery_beat.admin import PeriodicTaskAdmin
from django_celery_beat.models import PeriodicTask
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import ApiClient, ApiKey, CustomerAccount, FailedSignIn, User
from accounts.roles import ADMINISTRATOR
from accounts.services import (
    api_client_create,
    api_client_revoke,
    api_client_update,
    api_key_issue,
    api_key_revoke,
    customer_account_save,
    customer_accounts_delete,
    periodic_task_save,
    periodic_tasks_delete,
    periodic_tasks_set_enabled,
    user_delete,
    user_mfa_reset,
    user_password_set,
    user_save,
)
from audit.forms import VersionedAdminMixin, VersionedModelForm
from audit.models import Via
from config.admin_site import ReadOnlyAdminMixin
from orders.admin import orders_url
from orders.models import Order

# The second factor's secrets stay out of the admin: django-otp registers its devices there
# (with their keys, editable), which would let anyone with the admin's rights read or plant a
# user's authenticator key. Administrators reset a second factor with the action on users.
for _model in (TOTPDevice, StaticDevice):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)

#: The acting user of a password change: Django's view builds the form without the request.
_password_actor: contextvars.ContextVar = contextvars.ContextVar("password_actor", default=None)


class AuditedPasswordChangeForm(AdminPasswordChangeForm):
    def save(self, commit=True):
        password = self.cleaned_data["password1"] if self.cleaned_data.get("set_usable_password", True) else None
        return user_password_set(user=self.user, password=password, actor=_password_actor.get())


@admin.register(User)
class BackOfficeUserAdmin(UserAdmin):
    list_display = ["username", "email", "first_name", "last_name", "roles", "second_factor", "is_active", "last_login"]
    list_filter = ["groups", "is_active", "is_superuser"]
    actions = ["reset_second_factor"]
    change_password_form = AuditedPasswordChangeForm

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        user_save(user=obj, actor=request.user, groups=data.get("groups"), permissions=data.get("user_permissions"))

    def delete_model(self, request, obj):
        user_delete(user=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        for user in queryset:
            user_delete(user=user, actor=request.user, via=Via.BULK)

    def user_change_password(self, request, id, form_url=""):
        token = _password_actor.set(request.user)
        try:
            with transaction.atomic():
                return super().user_change_password(request, id, form_url)
        finally:
            _password_actor.reset(token)

    def get_queryset(self, request):
        confirmed = TOTPDevice.objects.filter(user=OuterRef("pk"), confirmed=True)
        return super().get_queryset(request).prefetch_related("groups").annotate(has_mfa=Exists(confirmed))

    @admin.display(description="roles")
    def roles(self, obj: User) -> str:
        return ", ".join(sorted(group.name for group in obj.groups.all()))

    @admin.display(description="second factor", boolean=True, ordering="has_mfa")
    def second_factor(self, obj: User) -> bool:
        return obj.has_mfa

    def has_reset_mfa_permission(self, request) -> bool:
        return _administrator(request)

    @admin.action(
        description="Reset the second factor of selected users (signs them out; they set it up again at sign-in)",
        permissions=["reset_mfa"],
    )
    def reset_second_factor(self, request, queryset):
        reset = [
            user.username
            for user in queryset
            if user_mfa_reset(user=user, actor=request.user, via=Via.ADMIN_ACTION)
        ]
        if queryset.filter(pk=request.user.pk).exists():
            # The reset ended this very session too: a fresh (anonymous) one, rather than
            # Django's "session was deleted" error when it saves the ended one.
            logout(request)
        if reset:
            self.message_user(request, f"Second factor reset for {', '.join(reset)}.", messages.SUCCESS)
        else:
            self.message_user(request, "None of the selected users had a second factor.", messages.WARNING)


class CustomerAccountForm(VersionedModelForm):
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
class CustomerAccountAdmin(VersionedAdminMixin, admin.ModelAdmin):
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

    def save_model(self, request, obj, form, change):
        customer_account_save(
            account=obj,
            preferred_brands=form.cleaned_data["preferred_brands"],
            excluded_brands=form.cleaned_data["excluded_brands"],
            actor=request.user,
            expected_version=self.expected_version(form),
        )

    def save_related(self, request, form, formsets, change):
        # customer_account_save wrote the brand preferences (no form.save_m2m()); no inlines.
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def delete_model(self, request, obj):
        customer_accounts_delete(accounts=CustomerAccount.objects.filter(pk=obj.pk), actor=request.user)

    def delete_queryset(self, request, queryset):
        customer_accounts_delete(accounts=queryset, actor=request.user, via=Via.BULK)

    @admin.display(description="orders", ordering="order_count")
    def orders(self, obj: CustomerAccount) -> str:
        if not obj.order_count:
            return "0"
        return format_html('<a href="{}">{}</a>', orders_url(obj), obj.order_count)


# --- webshop API clients and keys (administrators only) -----------------------------------------------

_ISSUE_FORM = """{% extends "admin/base_site.html" %}
{% block content %}
<h1>Issue a new key for {{ client.name }}</h1>
<p>The client's other keys keep working: give the new key to the webshop, then revoke the old one
(<a href="{{ keys_url }}">keys</a>).</p>
<form method="post">{% csrf_token %}{{ form.as_p }}
<input type="submit" value="Issue key"> <a href="{{ back_url }}">Cancel</a></form>
{% endblock %}"""

_ISSUED_PAGE = """{% extends "admin/base_site.html" %}
{% block content %}
<h1>New key for {{ client.name }}</h1>
<p><strong>Copy this key now: it is shown only this once</strong> (we keep only its digest).
Send it as <code>Authorization: Bearer &lt;key&gt;</code>.</p>
<p><code id="api-key">{{ secret }}</code></p>
<p>Prefix {{ key.prefix }}{% if key.expires_at %}, expires {{ key.expires_at }}{% else %},
<strong>never expires</strong>{% endif %}.</p>
<p><a href="{{ back_url }}">Back to {{ client.name }}</a></p>
{% endblock %}"""


def _administrator(request) -> bool:
    return request.user.is_active and request.user.has_role(ADMINISTRATOR)


class AdministratorsOnlyMixin:
    def has_module_permission(self, request) -> bool:
        return _administrator(request)

    def has_view_permission(self, request, obj=None) -> bool:
        return _administrator(request)

    def has_add_permission(self, request, obj=None) -> bool:
        return _administrator(request)

    def has_change_permission(self, request, obj=None) -> bool:
        return _administrator(request)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # revoke instead: the record of who had access stays

    def has_revoke_permission(self, request) -> bool:
        return _administrator(request)


class ApiClientForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=ApiClient.Scope.choices,
        widget=forms.CheckboxSelectMultiple,
        help_text="read: the GET endpoints and cart recommendations; events: posting webshop events.",
    )

    class Meta:
        model = ApiClient
        fields = ["name", "scopes", "rate_per_minute"]


class IssueKeyForm(forms.Form):
    expires_days = forms.IntegerField(
        min_value=0,
        max_value=3650,
        label="Expires in (days)",
        help_text="0: never expires (not recommended: a leaked key then works until it is revoked).",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["expires_days"].initial = settings.API_KEY_EXPIRY_DAYS


class ApiKeyInline(admin.TabularInline):
    model = ApiKey
    extra = 0
    can_delete = False
    fields = ["prefix", "created_at", "created_by", "expires_at", "last_used_at", "revoked_at"]
    readonly_fields = fields
    ordering = ["-created_at"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_view_permission(self, request, obj=None) -> bool:
        return _administrator(request)


@admin.register(ApiClient)
class ApiClientAdmin(AdministratorsOnlyMixin, admin.ModelAdmin):
    """Webshop API clients. Creating one leads to issuing its first key; keys are shown once.
    Every change goes through accounts.services."""

    form = ApiClientForm
    list_display = ["name", "scope_list", "rate_per_minute", "live_keys", "created_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name"]
    readonly_fields = ["issue_key_link", "created_by", "created_at", "revoked_at"]
    inlines = [ApiKeyInline]
    actions = ["revoke_clients"]

    def get_queryset(self, request):
        live = Count("keys", filter=Q(keys__revoked_at__isnull=True))
        return super().get_queryset(request).annotate(live_key_count=live)

    def get_readonly_fields(self, request, obj=None):
        return ["name", *self.readonly_fields] if obj is not None else []

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["name", "scopes", "rate_per_minute"]
        return ["name", "scopes", "rate_per_minute", "issue_key_link", "created_by", "created_at", "revoked_at"]

    @admin.display(description="scopes")
    def scope_list(self, obj: ApiClient) -> str:
        return ", ".join(obj.scopes or [])

    @admin.display(description="live keys", ordering="live_key_count")
    def live_keys(self, obj: ApiClient) -> int:
        return obj.live_key_count

    @admin.display(description="new key")
    def issue_key_link(self, obj: ApiClient) -> str:
        if obj.revoked_at is not None:
            return "Revoked: no new keys."
        url = reverse("admin:accounts_apiclient_issue_key", args=[obj.pk])
        return format_html('<a href="{}">Issue a new key</a> (the other keys keep working)', url)

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            api_client_update(
                client_id=obj.pk, scopes=data["scopes"], rate_per_minute=data["rate_per_minute"], actor=request.user
            )
        else:
            created = api_client_create(
                name=data["name"], scopes=data["scopes"], rate_per_minute=data["rate_per_minute"], actor=request.user
            )
            obj.pk = created.pk
            obj._state.adding = False

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else []

    def response_add(self, request, obj, post_url_continue=None):
        return HttpResponseRedirect(reverse("admin:accounts_apiclient_issue_key", args=[obj.pk]))

    @admin.action(description="Revoke selected clients (all their keys stop working)", permissions=["revoke"])
    def revoke_clients(self, request, queryset):
        revoked = sum(
            api_client_revoke(client_id=pk, actor=request.user, via=Via.ADMIN_ACTION)
            for pk in queryset.values_list("pk", flat=True)
        )
        self.message_user(request, f"Revoked {revoked} client(s).", messages.SUCCESS)

    def get_urls(self):
        view = self.admin_site.admin_view(self.issue_key_view)
        return [path("<int:pk>/issue-key/", view, name="accounts_apiclient_issue_key"), *super().get_urls()]

    def issue_key_view(self, request, pk: int):
        if not _administrator(request):
            raise PermissionDenied("Only administrators manage API clients.")
        client = get_object_or_404(ApiClient, pk=pk)
        context = {
            **self.admin_site.each_context(request),
            "client": client,
            "title": f"New key for {client.name}",
            "back_url": reverse("admin:accounts_apiclient_change", args=[client.pk]),
            "keys_url": reverse("admin:accounts_apikey_changelist") + f"?client__id__exact={client.pk}",
        }
        if client.revoked_at is not None:
            self.message_user(request, "This client is revoked: it gets no new keys.", messages.ERROR)
            return HttpResponseRedirect(context["back_url"])
        form = IssueKeyForm(request.POST if request.method == "POST" else None)
        if form.is_bound and form.is_valid():
            try:
                issued = api_key_issue(
                    client=client, actor=request.user, expires_days=form.cleaned_data["expires_days"]
                )
            except ValidationError as error:
                self.message_user(request, " ".join(error.messages), messages.ERROR)
                return HttpResponseRedirect(context["back_url"])
            if issued.key.expires_at is None:
                self.message_user(
                    request, "This key never expires: revoke it as soon as it is no longer needed.", messages.WARNING
                )
            page = engines["django"].from_string(_ISSUED_PAGE)
            response = HttpResponse(page.render({**context, "key": issued.key, "secret": issued.secret}, request))
            response["Cache-Control"] = "no-store"  # the key must not sit in any cache
            return response
        page = engines["django"].from_string(_ISSUE_FORM)
        return HttpResponse(page.render({**context, "form": form}, request))


@admin.register(ApiKey)
class ApiKeyAdmin(AdministratorsOnlyMixin, admin.ModelAdmin):
    """Keys of the API clients: shown by prefix only. Issue keys from the client's page."""

    list_display = ["prefix", "client", "created_at", "created_by", "expires_at", "last_used_at", "revoked_at"]
    list_select_related = ["client", "created_by"]
    list_filter = ["client", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["prefix", "client__name"]
    fields = list_display
    readonly_fields = list_display
    actions = ["revoke_keys"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Revoke selected keys", permissions=["revoke"])
    def revoke_keys(self, request, queryset):
        revoked = sum(
            api_key_revoke(key_id=pk, actor=request.user, via=Via.ADMIN_ACTION)
            for pk in queryset.values_list("pk", flat=True)
        )
        self.message_user(request, f"Revoked {revoked} key(s).", messages.SUCCESS)


# --- failed sign-ins (django-axes), for administrators ------------------------------------------------

if admin.site.is_registered(AccessFailureLog):
    admin.site.unregister(AccessFailureLog)


@admin.register(FailedSignIn)
class FailedSignInAdmin(ReadOnlyAdminMixin, AccessFailureLogAdmin):
    """Every failed sign-in (user name as typed, client address, time, whether it locked the
    pair), as django-axes records it: a record, so nobody edits or deletes it here."""

    list_display = ["attempt_time", "username", "ip_address", "locked_out", "user_agent", "path_info"]
    list_filter = ["locked_out", "attempt_time"]
    date_hierarchy = "attempt_time"
    ordering = ["-attempt_time"]

    def has_module_permission(self, request) -> bool:
        return _administrator(request)

    def has_view_permission(self, request, obj=None) -> bool:
        return _administrator(request)


# --- beat schedules: django-celery-beat's admin, with its writes through accounts.services ------------


class AuditedPeriodicTaskAdmin(PeriodicTaskAdmin):
    def save_model(self, request, obj, form, change):
        periodic_task_save(task=obj, actor=request.user)

    def delete_model(self, request, obj):
        periodic_tasks_delete(tasks=PeriodicTask.objects.filter(pk=obj.pk), actor=request.user)

    def delete_queryset(self, request, queryset):
        periodic_tasks_delete(tasks=queryset, actor=request.user, via=Via.BULK)

    def _set_enabled(self, request, queryset, enabled: bool | None, verb: str) -> None:
        changed = periodic_tasks_set_enabled(tasks=queryset, enabled=enabled, actor=request.user, via=Via.ADMIN_ACTION)
        self.message_user(request, f"{changed} task(s) {verb}.", messages.SUCCESS)

    @admin.action(description="Enable selected tasks")
    def enable_tasks(self, request, queryset):
        self._set_enabled(request, queryset, True, "enabled")

    @admin.action(description="Disable selected tasks")
    def disable_tasks(self, request, queryset):
        self._set_enabled(request, queryset, False, "disabled")

    @admin.action(description="Toggle activity of selected tasks")
    def toggle_tasks(self, request, queryset):
        self._set_enabled(request, queryset, None, "toggled")


if admin.site.is_registered(PeriodicTask):
    admin.site.unregister(PeriodicTask)
admin.site.register(PeriodicTask, AuditedPeriodicTaskAdmin)
