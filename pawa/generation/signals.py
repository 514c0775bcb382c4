from django.dispatch import Signal

# Sent (sender=Generation, generation=...) when a generation reaches a final status.
generation_finished = Signal()
