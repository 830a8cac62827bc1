#!/usr/bin/env bash
# `make run`: bring up the whole dev stack, drive the scripted scenario through it, print what
# happened, and leave the stack running with the URLs to look at.
set -euo pipefail
# shellcheck source=infra/dev/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

bash infra/dev/setup.sh
cargo build --workspace --bins
bash infra/dev/stack.sh up
# shellcheck source=infra/dev/ports.env
source infra/dev/ports.env
export FIRESTORE_EMULATOR_HOST="127.0.0.1:$EMULATOR_PORT"
export SCENARIO_SIMULATOR_URL="http://127.0.0.1:$VENTURES_PORT"
export SCENARIO_GATEWAY_URL="http://127.0.0.1:$GATEWAY_PORT"
export SCENARIO_OIDC_URL="http://127.0.0.1:$OIDC_PORT"
export SCENARIO_DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/brain"
echo
target/debug/scenario "$@"

# --- QuickBooks (flow 7): one change inside QuickBooks → webhook → qbo-mirror → the advisor's digest
psql_bin="$(command -v psql || find /usr/lib/postgresql -path '*/bin/psql' 2>/dev/null | sort -V | tail -n1)"
sql() { "$psql_bin" -X -w -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d brain -tA -F $'\t' -v ON_ERROR_STOP=1 -c "$1"; }
get() { curl --noproxy '*' -sS --fail-with-body --max-time 10 "$@"; }
dollars() { jq -r --arg k "$2" 'if .[$k] == null then "?" else (.[$k] / 100 | round | tostring) end' <<<"$1"; }

qbo_step() {
  local sim="http://127.0.0.1:$QBO_PORT" gw="http://127.0.0.1:$GATEWAY_PORT" realm company token
  local client before after answer entity id sync_token op t0 recorded="" webhook seq delivery deadline
  IFS=$'\t' read -r realm company < <(sql "SELECT realm_id, company_name FROM qbo_mirror.realms
    WHERE state = 'active' AND tenant_id = 'default' AND advisor_id = 'dev-staff' ORDER BY realm_id LIMIT 1") || true
  [[ -n "$realm" ]] || { echo "  QuickBooks: no company connected to qbo-mirror (see infra/dev/stack.sh up)"; return 1; }
  token="$(target/debug/dev-oidc mint --role staff --tenant default --url "http://127.0.0.1:$OIDC_PORT")"
  digest_client() {
    local body
    body="$(get -H "Authorization: Bearer $token" "$gw/api/v1/advisor/digest")" \
      || { echo "  QuickBooks: GET /api/v1/advisor/digest failed: ${body:0:300}" >&2; return 1; }
    jq -ce --arg r "$realm" '.since as $since | .clients[]? | select(.realmId == $r) | . + {digestSince: $since}' <<<"$body" \
      || { echo "  QuickBooks: the digest of dev-staff has no client $realm: ${body:0:300}" >&2; return 1; }
  }
  client="$(digest_client)" || return 1
  before="$(jq -r '.changesSince' <<<"$client")"

  seq="$(get "$sim/control/webhooks" | jq -r '.counts.deliveries // 0')" || seq=0
  t0="$(now_ms)"
  answer="$(get -X POST -H 'Content-Type: application/json' -d '{"updates": 1}' "$sim/control/realms/$realm/changes")" \
    || { echo "  QuickBooks: POST /control/realms/$realm/changes failed: $answer"; return 1; }
  IFS=$'\t' read -r entity id sync_token op < <(jq -r '.changes[0] | [.entity, .id, .syncToken, .operation] | @tsv' <<<"$answer")

  # The mirror has it when its transaction_log holds that version (recorded after the change: the
  # simulator forgets its changes when it restarts, so an older row may carry the same SyncToken).
  deadline=$((SECONDS + 30))
  until [[ -n "$recorded" ]]; do
    recorded="$(sql "SELECT (extract(epoch FROM recorded_at) * 1000)::bigint FROM qbo_mirror.transaction_log
      WHERE realm_id = '$realm' AND entity = '$entity' AND entity_id = '$id' AND sync_token = $sync_token
        AND recorded_at >= to_timestamp($t0 / 1000.0) ORDER BY id DESC LIMIT 1")"
    if [[ -z "$recorded" ]] && ((SECONDS >= deadline)); then
      echo "  QuickBooks: $entity $id of $company ($op, SyncToken $sync_token) did not reach qbo-mirror within 30 s (.dev/logs/qbo-mirror.log)"
      return 1
    fi
    [[ -n "$recorded" ]] || sleep 0.05
  done
  # Webhook or schedule: a webhook makes the gateway publish and the mirror set sync_requested_at.
  webhook="$(sql "SELECT coalesce(sync_requested_at >= to_timestamp($t0 / 1000.0), false) FROM qbo_mirror.realms WHERE realm_id = '$realm'")"
  delivery="$(get "$sim/control/webhooks/deliveries?after=$seq" | jq -r --arg r "$realm" --arg id "$id" --arg st "$sync_token" \
    '[.deliveries[] | select(any(.events[]; .realmId == $r and .id == $id and .syncToken == $st))] | last
     | if . == null then "not sent yet" else "\(.outcome), HTTP \(.lastStatus // "-")" end' || echo "?")"

  # The digest shows it once the gateway reads the new aggregates.
  deadline=$((SECONDS + 10))
  while :; do
    client="$(digest_client)" || return 1
    after="$(jq -r '.changesSince' <<<"$client")"
    [[ "$after" != "$before" ]] || ((SECONDS >= deadline)) || { sleep 0.1; continue; }
    break
  done
  printf '  QuickBooks: %s %s of "%s" changed (%s, SyncToken %s) → qbo-mirror in %s s (%s; webhook %s)\n' \
    "$entity" "$id" "$company" "$op" "$sync_token" "$(awk -v ms="$((recorded - t0))" 'BEGIN { printf "%.2f", ms / 1000 }')" \
    "$([[ "$webhook" == t ]] && echo "sync asked by the webhook" || echo "scheduled sync, not the webhook")" "$delivery"
  printf '  advisor digest (dev-staff): "%s" changesSince %s → %s (since %s) · cash $%s · AP due 7 d $%s · AP overdue $%s · AR overdue $%s · runway %s weeks\n' \
    "$company" "$before" "$after" "$(jq -r '.digestSince // "?" | .[0:16]' <<<"$client")" \
    "$(dollars "$client" cashCents)" "$(dollars "$client" apDue7Cents)" "$(dollars "$client" apOverdueCents)" \
    "$(dollars "$client" arOverdueCents)" "$(jq -r 'if .runwayWeeks == null then "-" else (.runwayWeeks * 10 | round / 10 | tostring) end' <<<"$client")"
}
# --- Documents (flow 4): a Ventures condition → task; an upload → ShareFile → Ventures → pending_review
documents_step() {
  local vs="http://127.0.0.1:$VENTURES_PORT" gw="http://127.0.0.1:$GATEWAY_PORT" storage="http://127.0.0.1:$STORAGE_PORT"
  local app loan condition token answer object t0 state="" deadline md5 file
  app="dev-docs-$(date +%s)"
  loan="$(get -X POST -H 'Content-Type: application/json' -d "{\"loanType\":\"7A\",\"status\":\"Open\",\"externalId\":\"$app\",\"borrower\":{\"entityId\":\"B-$app\",\"name\":\"Dev Borrower\"},\"amounts\":{\"requested\":250000}}" "$vs/control/loans" | jq -r .loanId)" \
    || { echo "  Documents: could not create a loan in the Ventures simulator"; return 1; }
  condition="$(get -X POST -H 'Content-Type: application/json' -d '{"name":"Business bank statements (3 months)"}' "$vs/control/loans/$loan/conditions" | jq -r .conditionId)" \
    || { echo "  Documents: could not add a condition"; return 1; }
  deadline=$((SECONDS + 30))
  until [[ -n "$state" ]]; do
    state="$(sql "SELECT state FROM projection_writer.tasks WHERE task_id = '$condition'")"
    [[ -n "$state" ]] || ((SECONDS < deadline)) || { echo "  Documents: no task for condition $condition within 30 s (.dev/logs/ventures-sync.log, projection-writer.log)"; return 1; }
    [[ -n "$state" ]] || sleep 0.1
  done
  echo "  Documents: Ventures condition \"Business bank statements\" of loan $loan → task $condition of $app ($state)"
  object="$app/statements.pdf"
  printf '%%PDF-1.7\n%% dev statements of %s\n%s\n' "$app" "$(head -c 3000 /dev/urandom | base64 -w0)" >"$STATE_DIR/statements.pdf"
  md5="$(md5sum "$STATE_DIR/statements.pdf" | cut -d' ' -f1)"
  get -X PUT -H 'Content-Type: application/pdf' --data-binary "@$STATE_DIR/statements.pdf" "$storage/control/objects/brain-uploads/$object" >/dev/null \
    || { echo "  Documents: the upload into the Cloud Storage simulator failed"; return 1; }
  token="$(target/debug/dev-oidc mint --role borrower --tenant default --application "$app" --url "http://127.0.0.1:$OIDC_PORT")"
  t0="$(now_ms)"
  answer="$(get -X POST -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    -d "{\"applicationId\":\"$app\",\"taskId\":\"$condition\",\"bucket\":\"brain-uploads\",\"object\":\"$object\",\"fileName\":\"Bank statements.pdf\"}" "$gw/api/v1/documents/ingest")" \
    || { echo "  Documents: POST /api/v1/documents/ingest failed: ${answer:0:300}"; return 1; }
  deadline=$((SECONDS + 30))
  while state="$(sql "SELECT state FROM projection_writer.tasks WHERE task_id = '$condition'")"; [[ "$state" != pending_review ]]; do
    ((SECONDS < deadline)) || { echo "  Documents: the task is still $state after 30 s (.dev/logs/sharefile-sync.log, ventures-sync.log)"; return 1; }
    sleep 0.1
  done
  file="$(get "http://127.0.0.1:$SHAREFILE_PORT/control/files" | jq -r --arg p "/Clients/$app/" '[.[] | select(.path | startswith($p))][0] | "\(.path) (MD5 \(.hash))"')"
  printf '  Documents: upload %s (MD5 %s) ingested (202) → ShareFile %s → attached to the Ventures condition → task pending_review in %s s\n' \
    "$(jq -r .documentId <<<"$answer")" "$md5" "$file" "$(awk -v ms="$(($(now_ms) - t0))" 'BEGIN { printf "%.2f", ms / 1000 }')"
  echo "  (the task completes when Ventures satisfies the condition: PATCH $vs/api/v4/loans/$loan/conditions/$condition)"
}
# --- Calendar (flow 5): free slots from Graph (the simulator) → a booking → Graph event, Teams link, ICS
booking_step() {
  local gw="http://127.0.0.1:$GATEWAY_PORT" token slots="" start answer meeting state="pending" t0 deadline ics
  token="$(target/debug/dev-oidc mint --role staff --tenant default --url "http://127.0.0.1:$OIDC_PORT")"
  deadline=$((SECONDS + 30))
  until [[ -n "$slots" ]]; do
    slots="$(get -H "Authorization: Bearer $token" "$gw/api/v1/calendar/slots?staffId=dev-advisor&duration=30" 2>/dev/null | jq -ce 'select(.slots | length > 0)')" || slots=""
    [[ -n "$slots" ]] || ((SECONDS < deadline)) || { echo "  Calendar: no free slots of dev-advisor within 30 s (.dev/logs/graph-calendar.log)"; return 1; }
    [[ -n "$slots" ]] || sleep 0.2
  done
  start="$(jq -r '.slots[0].start' <<<"$slots")"
  t0="$(now_ms)"
  answer="$(get -X POST -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    -d "{\"staffId\":\"dev-advisor\",\"start\":\"$start\",\"durationMinutes\":30,\"attendeeEmail\":\"borrower@example.com\",\"attendeeName\":\"Dev Borrower\",\"subject\":\"Loan review\"}" \
    "$gw/api/v1/calendar/book")" || { echo "  Calendar: POST /api/v1/calendar/book failed: ${answer:0:300}"; return 1; }
  meeting="$(jq -r .meetingId <<<"$answer")"
  deadline=$((SECONDS + 30))
  while [[ "$state" == pending ]]; do
    ((SECONDS < deadline)) || { echo "  Calendar: meeting $meeting still pending after 30 s (.dev/logs/graph-calendar.log)"; return 1; }
    sleep 0.1
    answer="$(get -H "Authorization: Bearer $token" "$gw/api/v1/meetings/$meeting")" || continue
    state="$(jq -r .state <<<"$answer")"
  done
  ics="$(get -H "Authorization: Bearer $token" "$gw/api/v1/meetings/$meeting/ics" | tr -d '\r' | grep -E '^(METHOD|UID|SEQUENCE):' | paste -sd ' ' -)" || ics="(no ICS)"
  printf '  Calendar: %d free 30-min slots of dev-advisor (availability %.1f s old) → booked %s → %s in %s s · Teams %s · ICS %s\n' \
    "$(jq '.slots | length' <<<"$slots")" "$(jq -r '.ageSeconds // 0' <<<"$slots")" "$start" "$state" \
    "$(awk -v ms="$(($(now_ms) - t0))" 'BEGIN { printf "%.2f", ms / 1000 }')" "$(jq -r '.joinUrl // "-"' <<<"$answer" | cut -c1-48)…" "$ics"
  [[ "$state" == booked ]]
}
# --- Messages (flow 6): a staff message in Firestore → sent, relayed to Teams once; the borrower's receipt → read
messages_step() {
  FIRESTORE_EMULATOR_HOST="127.0.0.1:$EMULATOR_PORT" target/debug/messages-demo --graph "http://127.0.0.1:$GRAPH_PORT" 2>/dev/null \
    || { echo "  Messages: the message did not go round (.dev/logs/firestore-change-listener.log, projection-writer.log, graph-calendar.log)"; return 1; }
}
qbo_status=0
qbo_step || qbo_status=1
documents_step || qbo_status=1
booking_step || qbo_status=1
messages_step || qbo_status=1
echo
bash infra/dev/stack.sh status
cat <<TXT

The stack is still running. Try (the gateway wants a token from the dev issuer):
  TOKEN=\$(target/debug/dev-oidc mint --role staff --tenant default --url http://127.0.0.1:$OIDC_PORT)
  curl -s -H "Authorization: Bearer \$TOKEN" http://127.0.0.1:$GATEWAY_PORT/api/v1/applications/<application id>
  curl -s http://127.0.0.1:$VENTURES_SYNC_OPS_PORT/metrics | grep ventures_sync_
  curl -s http://127.0.0.1:$PROJECTION_WRITER_OPS_PORT/metrics | grep projection_writer_
  target/debug/dev-oidc mint --role ops --tenant default --url http://127.0.0.1:$OIDC_PORT   # then paste it into:
  http://127.0.0.1:$GATEWAY_PORT/ops     # the ops page: sync health, dead letters, dry runs and replays
  curl -s -H "Authorization: Bearer \$TOKEN" http://127.0.0.1:$GATEWAY_PORT/api/v1/advisor/digest   # dev-staff's QuickBooks companies
  curl -s -X POST -d '{"updates": 3}' http://127.0.0.1:$QBO_PORT/control/changes   # changes inside QuickBooks (every company)
  curl -s -H "Authorization: Bearer \$TOKEN" http://127.0.0.1:$GATEWAY_PORT/api/v1/inbox   # the staff inbox: open tasks and SLA breaches
  curl -s http://127.0.0.1:$SHAREFILE_PORT/control/files   # what reached ShareFile
  curl -s -H "Authorization: Bearer \$TOKEN" "http://127.0.0.1:$GATEWAY_PORT/api/v1/calendar/slots?staffId=dev-advisor&duration=60"   # free slots
  make logs      # every component's log tail (.dev/logs/)
  make down      # stop everything make run started
TXT
exit "$qbo_status"
