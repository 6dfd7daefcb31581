from django.urls import path

from courts import views

urlpatterns = [
    path("courts/", views.courts),
    path("judges/", views.judges),
    path("judges/<int:judge_id>/", views.judge),
    path("cases/", views.cases),
    path("cases/<str:number>/", views.case),
]
