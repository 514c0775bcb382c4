from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "pawa.ops"
    verbose_name = "Operations"

    def ready(self):
        from pawa.generation.signals import generation_finished
        from pawa.ops import metrics

        def count(sender, generation, **kwargs):
            metrics.generation_count(generation)

        # Whichever process ends a generation (the worker, or the web process for a cancelled
        # or reaped one) counts it.
        generation_finished.connect(count, weak=False, dispatch_uid="pawa.ops.metrics.generation_count")
