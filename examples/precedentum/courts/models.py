from django.db import models


class Court(models.Model):
    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=200)
    circuit = models.CharField(max_length=50)

    def __str__(self):
        return self.name


class Judge(models.Model):
    class Role(models.TextChoices):
        CHIEF = "chief", "Chief District Judge"
        DISTRICT = "district", "District Judge"
        SENIOR = "senior", "Senior District Judge"
        MAGISTRATE = "magistrate", "Magistrate Judge"

    court = models.ForeignKey(Court, on_delete=models.PROTECT, related_name="judges")
    name = models.CharField(max_length=200)
    role = models.CharField(max_length=20, choices=Role.choices)
    division = models.CharField(max_length=50)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["court", "name"], name="unique_judge_per_court")]
        ordering = ["name"]

    def __str__(self):
        return self.name


class Case(models.Model):
    number = models.CharField(max_length=32, unique=True)  # e.g. 1:24-cv-00042
    title = models.CharField(max_length=300)
    court = models.ForeignKey(Court, on_delete=models.PROTECT, related_name="cases")
    judge = models.ForeignKey(Judge, on_delete=models.PROTECT, related_name="cases")
    filed_on = models.DateField()
    nature_of_suit = models.CharField(max_length=100)
    status = models.CharField(max_length=20, default="open")

    class Meta:
        indexes = [models.Index(fields=["judge", "-filed_on"])]
        ordering = ["-filed_on", "number"]

    def __str__(self):
        return self.number
