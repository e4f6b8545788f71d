#!/bin/sh
# Stands in for the bundle's invocation image in a recorded run (`stowage exec
# --installation`): says what it does, then leaves the bundle's outputs where bundle.json
# puts them, for Stowage to store.
set -eu
echo "$CNAB_ACTION of $CNAB_INSTALLATION_NAME: revision $CNAB_REVISION, greeting=$GREETING"
outputs="$STOWAGE_FILES_DIR/cnab/app/outputs"
echo "https://hello.example/$CNAB_REVISION" > "$outputs/endpoint"
cp "$STOWAGE_FILES_DIR/cnab/app/tls/cert.pem" "$outputs/clusterCert"
