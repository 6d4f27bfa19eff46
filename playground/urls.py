from __future__ import annotations

from django.contrib import admin
from django.contrib.staticfiles.urls import staticfiles_urlpatterns
from django.urls import path

from playground import views

urlpatterns = [
    path("", views.home, name="home"),
    path("admin/", admin.site.urls),
]

# Serves static files when DEBUG is on (make run); production serves them from the proxy.
urlpatterns += staticfiles_urlpatterns()
