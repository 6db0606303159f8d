"""factory_boy factories shared by the whole suite."""

from decimal import Decimal

import factory
from django.contrib.auth.models import Group

from accounts.models import User
from catalog.models import AttributeDefinition, Brand, Category, Product, ProductStatus


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    is_staff = True
    password = factory.PostGenerationMethodCall("set_password", "correct-horse-battery")

    @factory.post_generation
    def role(self, create, extracted, **kwargs):
        if create and extracted:
            self.groups.add(Group.objects.get(name=extracted))
        if create:
            self.save()


class BrandFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Brand

    name = factory.Sequence(lambda n: f"Brand {n}")


class CategoryFactory(factory.django.DjangoModelFactory):
    """A root category; use catalog.services.category_save for nested ones."""

    class Meta:
        model = Category

    name = factory.Sequence(lambda n: f"Category {n}")
    path = factory.LazyAttribute(lambda o: o.name)


class AttributeDefinitionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AttributeDefinition

    code = factory.Sequence(lambda n: f"attr_{n}")
    label = factory.LazyAttribute(lambda o: o.code.replace("_", " ").title())


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product

    sku = factory.Sequence(lambda n: f"SKU-{n:05d}")
    name = factory.Sequence(lambda n: f"Product {n}")
    brand = factory.SubFactory(BrandFactory)
    category = factory.SubFactory(CategoryFactory)
    unit_price = Decimal("9.95")
    pack_quantity = 1
    unit = "pcs"
    status = ProductStatus.ACTIVE
