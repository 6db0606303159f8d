from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0004_customer_account_version"),
    ]

    operations = [
        migrations.AddField(
            model_name="customeraccount",
            name="is_placeholder",
            field=models.BooleanField(
                db_default=False,
                default=False,
                help_text="Holds the orders that have no customer id (orders import --anonymous); "
                "never counted as a customer, never gets brand preferences applied.",
            ),
        ),
    ]
