"""Request bodies of the OpenAI-compatible endpoints. Unknown fields and explicit nulls are accepted."""

from rest_framework import serializers

MAX_STOP = 4


class StopField(serializers.JSONField):
    def to_internal_value(self, data):
        if data is None:
            return []
        if isinstance(data, str):
            return [data] if data else []
        if isinstance(data, list) and all(isinstance(s, str) for s in data) and len(data) <= MAX_STOP:
            return [s for s in data if s]
        raise serializers.ValidationError(f"stop must be a string or a list of at most {MAX_STOP} strings.")


class ChatMessage(serializers.Serializer):
    role = serializers.ChoiceField(choices=["system", "developer", "user", "assistant", "tool"])
    content = serializers.JSONField(allow_null=True, required=False)
    name = serializers.CharField(required=False, allow_null=True, allow_blank=True)

    def validate(self, attrs):
        content = attrs.get("content")
        if content is None:
            text = ""
        elif isinstance(content, str):
            text = content
        elif isinstance(content, list):
            parts = []
            for part in content:
                if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                    raise serializers.ValidationError({"content": "Only text content parts are supported."})
                parts.append(part["text"])
            text = "".join(parts)
        else:
            raise serializers.ValidationError({"content": "content must be a string or a list of text parts."})
        role = {"developer": "system"}.get(attrs["role"], attrs["role"])
        if role == "tool":
            raise serializers.ValidationError({"role": "Tool messages are not supported."})
        return {"role": role, "content": text}


class SamplingInput(serializers.Serializer):
    model = serializers.CharField()
    temperature = serializers.FloatField(required=False, allow_null=True, min_value=0, max_value=2)
    top_p = serializers.FloatField(required=False, allow_null=True, min_value=0, max_value=1)
    top_k = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=1000)
    max_tokens = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    stop = StopField(required=False, allow_null=True)
    seed = serializers.IntegerField(required=False, allow_null=True)
    n = serializers.IntegerField(required=False, allow_null=True)
    stream = serializers.BooleanField(required=False, allow_null=True, default=False)
    stream_options = serializers.DictField(required=False, allow_null=True)
    user = serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=256)
    presence_penalty = serializers.FloatField(required=False, allow_null=True, min_value=-2, max_value=2)
    frequency_penalty = serializers.FloatField(required=False, allow_null=True, min_value=-2, max_value=2)
    repetition_penalty = serializers.FloatField(required=False, allow_null=True, min_value=0.5, max_value=2)

    def validate_n(self, value):
        if value not in (None, 1):
            raise serializers.ValidationError("Only n=1 is supported.")
        return value

    def validate(self, attrs):
        for name in ("presence_penalty", "frequency_penalty"):
            if (attrs.get(name) or 0) < 0:
                raise serializers.ValidationError({name: "Negative penalties are not supported."})
        return attrs

    def sampling(self) -> dict:
        """OpenAI's parameters mapped to the engine's; None where the client chose nothing (the
        admission then applies the defaults the chat uses too)."""
        data = self.validated_data
        temperature, top_p = data.get("temperature"), data.get("top_p")
        if top_p == 0:
            temperature, top_p = 0.0, 1.0  # only the most likely token: greedy
        penalty = data.get("repetition_penalty")
        strongest = max(data.get("presence_penalty") or 0, data.get("frequency_penalty") or 0)
        if penalty is None and strongest > 0:
            penalty = 1.0 + 0.5 * strongest  # 0..2 → 1.0..2.0
        seed = data.get("seed")
        return {
            "temperature": temperature,
            "top_p": top_p,
            "top_k": data.get("top_k"),
            "repetition_penalty": penalty,
            "stop": data.get("stop") or [],
            "seed": None if seed is None else seed % 2**32,
        }


class ChatCompletionInput(SamplingInput):
    messages = ChatMessage(many=True, allow_empty=False)
    max_completion_tokens = serializers.IntegerField(required=False, allow_null=True, min_value=1)


class CompletionInput(SamplingInput):
    prompt = serializers.JSONField()
    echo = serializers.BooleanField(required=False, allow_null=True)
    suffix = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    best_of = serializers.IntegerField(required=False, allow_null=True)
    logprobs = serializers.IntegerField(required=False, allow_null=True)

    def validate_prompt(self, value):
        if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str):
            value = value[0]
        if not isinstance(value, str):
            raise serializers.ValidationError("prompt must be a string (or a list with one string).")
        if not value:
            raise serializers.ValidationError("prompt must not be empty.")
        return value

    def validate(self, attrs):
        attrs = super().validate(attrs)
        if attrs.get("echo"):
            raise serializers.ValidationError({"echo": "echo is not supported."})
        if attrs.get("suffix"):
            raise serializers.ValidationError({"suffix": "suffix is not supported."})
        if attrs.get("best_of") not in (None, 1):
            raise serializers.ValidationError({"best_of": "Only best_of=1 is supported."})
        if attrs.get("logprobs") is not None:
            raise serializers.ValidationError({"logprobs": "logprobs is not supported."})
        return attrs
