class ModelError(Exception):
    """A model cannot be installed, loaded or used; the message says why, for people."""


class PromptTooLong(ModelError):
    """A single message does not fit the model's context window."""

    def __init__(self, message: str, *, prompt_tokens: int, context_length: int):
        super().__init__(message)
        self.prompt_tokens = prompt_tokens
        self.context_length = context_length


class InvalidParameter(ModelError):
    def __init__(self, message: str, *, param: str):
        super().__init__(message)
        self.param = param
