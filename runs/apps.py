from django.apps import AppConfig


class RunsConfig(AppConfig):
    name = "runs"
    verbose_name = "Runs"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from runs.models import Webhook
        from runs.webhooks import endpoints

        # A process that changes an endpoint sees the change at once (runs/webhooks/endpoints.py).
        post_save.connect(endpoints.forget, sender=Webhook, dispatch_uid="webhooks-forget-save")
        post_delete.connect(endpoints.forget, sender=Webhook, dispatch_uid="webhooks-forget-del")
