from django.contrib.auth.models import AbstractUser


class User(AbstractUser):
    """A PAWA account. People sign in with their email address."""

    def __str__(self) -> str:
        return self.email or self.username
