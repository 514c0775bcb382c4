"""django-allauth hooks for PAWA accounts."""

from allauth.account.adapter import DefaultAccountAdapter


class AccountAdapter(DefaultAccountAdapter):
    def _get_login_attempts_cache_key(self, request, **credentials) -> str:
        """Failed logins count per address *and* client IP (allauth counts per address).

        Counted per address alone, anyone who knows an address can lock its owner out for the
        whole window by failing on purpose; per address and IP, the owner still signs in from
        their own connection. The per-IP limit (ACCOUNT_RATE_LIMITS "login_failed") still caps
        guessing from one client across addresses.
        """
        return f"{super()._get_login_attempts_cache_key(request, **credentials)}:{self.get_client_ip(request)}"
