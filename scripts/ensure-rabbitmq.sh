#!/usr/bin/env bash
# Makes sure a RabbitMQ broker answers on 127.0.0.1:5672, starting the local one if needed.
set -euo pipefail
port_open() { (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; }
if port_open; then exit 0; fi
if ! command -v rabbitmq-server >/dev/null; then
  echo "ensure-rabbitmq: no broker on 127.0.0.1:5672 and rabbitmq-server is not installed (apt-get install rabbitmq-server)" >&2
  exit 1
fi
rabbitmq-server -detached || true
for _ in $(seq 1 90); do
  if port_open; then
    rabbitmqctl await_startup >/dev/null 2>&1 || true
    exit 0
  fi
  sleep 1
done
echo "ensure-rabbitmq: broker did not open 127.0.0.1:5672 within 90 s" >&2
exit 1
