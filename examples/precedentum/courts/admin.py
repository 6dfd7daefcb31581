from django.contrib import admin

from courts.models import Case, Court, Judge

admin.site.register(Court)
admin.site.register(Judge, list_display=["name", "role", "division", "court"], list_filter=["role", "division"])
admin.site.register(Case, list_display=["number", "title", "judge", "filed_on"], search_fields=["number", "title"])
