"""The groups behind Orbit's roles (see orbit/core/roles.py, which must say the same).

Permissions are normally created after all migrations (post_migrate); they are created
here first so the groups can hold them on a fresh database. The lists are frozen copies:
a later change to a role needs a new migration.
"""

from typing import Any

from django.contrib.auth.management import create_permissions
from django.db import migrations

VIEW = [
    "pipelines.view_pipeline",
    "runs.view_run",
    "runs.view_step",
    "runs.view_stepattempt",
    "runs.view_worker",
    "services.view_veryfidocument",
    "orbit.view_apitoken",
    "orbit.view_auditevent",
]
OPERATE = ["runs.operate_run", "pipelines.operate_pipeline"]
ADMINISTER = [
    "pipelines.add_pipeline",
    "pipelines.change_pipeline",
    "pipelines.delete_pipeline",
    "orbit.add_apitoken",
    "orbit.change_apitoken",
    "services.delete_veryfidocument",
]
GROUPS = {
    "Orbit viewers": VIEW,
    "Orbit operators": VIEW + OPERATE,
    "Orbit admins": VIEW + OPERATE + ADMINISTER,
}


def create_groups(apps: Any, schema_editor: Any) -> None:
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, permissions in GROUPS.items():
        group, _ = Group.objects.get_or_create(name=name)
        for permission in permissions:
            app_label, codename = permission.split(".")
            group.permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )


def delete_groups(apps: Any, schema_editor: Any) -> None:
    apps.get_model("auth", "Group").objects.filter(name__in=GROUPS).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("orbit", "0002_auditevent"),
        ("pipelines", "0003_operate_pipeline_permission"),
        ("runs", "0002_operate_run_permission"),
        ("services", "0001_initial"),
    ]

    operations = [migrations.RunPython(create_groups, delete_groups)]
