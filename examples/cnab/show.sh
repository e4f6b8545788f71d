#!/bin/sh
# Stands in for the bundle's invocation image: shows what it was given (secrets by size).
echo "greeting=$GREETING port=$BACKEND_PORT tier=$TIER debug=$DEBUG"
echo "image token: ${#AZ_IMAGE_TOKEN} bytes, db password: ${#DB_PASSWORD} bytes"
if [ -n "${REGISTRY_PASSWORD+set}" ]; then echo "registry password: given"; else echo "registry password: not given"; fi
cd "$STOWAGE_FILES_DIR" && find . -type f | sort | while read -r f; do
  echo "file $f: $(wc -c < "$f") bytes, mode $(stat -c %a "$f")"
done
head -n 1 cnab/app/tls/cert.pem
