# TCP
curl -s localhost:9002/v1/chat/completions -H 'content-type: application/json' \
  -d '{"model":"mock/echo","messages":[{"role":"user","content":"hi"}]}'

# Unix socket, streaming (ends with `data: [DONE]`)
curl -sN --unix-socket /tmp/pilotfish.sock http://pilotfish/v1/chat/completions \
  -H 'content-type: application/json' \
  -d '{"model":"mock/echo","stream":true,"messages":[{"role":"user","content":"hi"}]}'
