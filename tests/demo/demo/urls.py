from django.contrib import admin
from django.urls import path

from core import views

urlpatterns = [
    path("health/", views.health),
    path("ready/", views.ready),
    path("notes/", views.notes),
    path("notes/<int:pk>/", views.note_detail),
    path("tasks/add/", views.task_add),
    path("tasks/<str:task_id>/", views.task_status),
    path("heartbeats/", views.heartbeats),
    path("upload/", views.upload),
    path("admin/", admin.site.urls),
]
