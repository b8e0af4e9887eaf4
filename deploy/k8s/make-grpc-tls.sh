#!/usr/bin/env bash
# Makes a CA and a certificate for the coordinator's gRPC service (agents verify it with the CA), and
# prints the kubectl command that stores them in the Secret byol-grpc-tls the manifests mount:
#   deploy/k8s/make-grpc-tls.sh byol [out-dir]        # namespace (byol for the gpu overlay, byol-dev for dev)
# The CA key stays in out-dir (default ./byol-grpc-tls, mode 0700): keep it offline, it signs new certificates.
# Add --client to also make a client certificate for mTLS (see deploy/README.md "TLS for agents").
set -euo pipefail
ns="${1:?usage: $0 NAMESPACE [OUT_DIR] [--client]}"
out="${2:-byol-grpc-tls}"
client="${3:-}"
command -v openssl >/dev/null || { echo "needs the openssl CLI (apt-get install openssl)" >&2; exit 2; }
mkdir -p "$out" && chmod 700 "$out" && cd "$out"
umask 077
key=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
[ -f ca.key ] || openssl req -x509 "${key[@]}" -keyout ca.key -out ca.crt -days 3650 -subj "/CN=byol gRPC CA ($ns)" 2>/dev/null
svc=byol-coordinator
printf 'subjectAltName=DNS:%s,DNS:%s.%s,DNS:%s.%s.svc,DNS:%s.%s.svc.cluster.local\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' \
  "$svc" "$svc" "$ns" "$svc" "$ns" "$svc" "$ns" > server.ext
openssl req "${key[@]}" -keyout tls.key -out server.csr -subj "/CN=$svc" 2>/dev/null
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out tls.crt -days 825 -extfile server.ext 2>/dev/null
files=(--from-file=tls.crt --from-file=tls.key --from-file=ca.crt)
if [ "$client" = "--client" ]; then
  printf 'extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n' > client.ext
  openssl req "${key[@]}" -keyout client.key -out client.csr -subj "/CN=byol-agent" 2>/dev/null
  openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out client.crt -days 825 -extfile client.ext 2>/dev/null
  files+=(--from-file=client.crt --from-file=client.key)
fi
rm -f ./*.csr ./*.ext
echo "made $(pwd)/{ca.crt,tls.crt,tls.key${client:+,client.crt,client.key}}; store them with:"
echo "  kubectl -n $ns create secret generic byol-grpc-tls ${files[*]} --dry-run=client -o yaml | kubectl apply -f -"
echo "(run it in $(pwd); ca.key is not needed in the cluster)"
