#!/usr/bin/env bash
# Load benchmarks of the axum example server, each figure beside a baseline measured in the
# same run on the same machine. BENCHMARKS.md explains the figures; this script makes them.
#
# Phases (LOAD_PHASES, default: all seven; the last three need PostgreSQL):
#   put      PUT /user/password (fresh requests, and repeats inside the cooldown) beside a
#            handler in the same server that does none of the library's work
#   put-quiet the same with LOG_LEVEL=warn, to show what the per-request log line costs
#   confirm  confirms per second beside the bare Argon2id rate, and PUT latency while
#            confirms keep the hashing pool busy
#   memory   peak resident memory under 1,000 concurrent confirms
#   postgres the put phase against PostgreSQL, beside pgbench running the store's statements
#   postgres-pinned the same with PostgreSQL alone on the last CPU and everything else on the
#            others, so that neither side's CPU time comes out of the other's (needs the
#            PostgreSQL server on this machine and root, to move its processes: all of them,
#            other clients' sessions too; they are moved back at the end of the phase and on
#            exit, but not if the script is killed with SIGKILL)
#   growth   the PostgreSQL request path with 10 thousand and with 1 million users
#
# Needs: wrk (Debian package `wrk`), cargo; for the PostgreSQL phases also psql and pgbench, and
# LOAD_PG_URL, a PostgreSQL server URL without a database name (default
# postgres://postgres@127.0.0.1:5432); the script creates the database password_setup_load
# there and drops it on exit.
# Everything it starts listens on loopback and is stopped on exit. The load generator and
# the server share the machine, so every figure includes the generator's share of the CPUs.
#
# Knobs: LOAD_DURATION (seconds per measurement, 10), LOAD_CONNECTIONS (32), LOAD_THREADS
# (wrk threads, 1), LOAD_ROUNDS (rounds of each throughput measurement, 3),
# LOAD_LATENCY_ROUNDS (rounds of PUT latency during confirms, 5: p99 of a short run is
# noisier than throughput), LOAD_RESULTS (result file, target/load-results.txt),
# LOAD_SKIP_BUILD=1 to use the binaries already built, LOAD_KEEP_WORK=1 to keep the work
# folder (server output, wrk reports). The PostgreSQL phases use 16 connections unless
# LOAD_CONNECTIONS says otherwise: the example's pool size.

set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

duration=${LOAD_DURATION:-10}
connections=${LOAD_CONNECTIONS:-32}
threads=${LOAD_THREADS:-1}
rounds=${LOAD_ROUNDS:-3}
latency_rounds=${LOAD_LATENCY_ROUNDS:-5}
results=${LOAD_RESULTS:-$repo/target/load-results.txt}
phases=${LOAD_PHASES:-put put-quiet confirm memory postgres postgres-pinned growth}
server_bin=$repo/target/release/examples/axum
lua=$repo/benches/load

pg_server=${LOAD_PG_URL:-postgres://postgres@127.0.0.1:5432}
pg_database=password_setup_load
pg_url=$pg_server/$pg_database
pg_databases=()

work=$(mktemp -d)
server_pid=
server_port=
extra_pids=()
# A command prefix for the server and the load generators (empty, or taskset while PostgreSQL
# has a CPU of its own); while PostgreSQL is moved, its postmaster, the CPU list each of its
# processes had (by pid), its CPU and the others'.
pinned=()
pg_postmaster=
pg_affinity=()
pg_cpu=
client_cpus=

cleanup() {
    stop_server
    unpin_postgres
    for pid in "${extra_pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${extra_pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    for database in "${pg_databases[@]}"; do
        psql -q "$pg_server/postgres" -c "DROP DATABASE IF EXISTS $database WITH (FORCE)" \
            >/dev/null 2>&1 || echo "could not drop the database $database" >&2
    done
    if [[ -z "${LOAD_KEEP_WORK:-}" ]]; then rm -rf "$work"; else echo "kept $work" >&2; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say() { printf '%s\n' "$*" | tee -a "$results"; }

stop_server() {
    if [[ -n "$server_pid" ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=
    fi
}

# seed_users FILE COUNT [PREFIX [STEP]]: users PREFIX0, PREFIX<STEP>, ... (COUNT of them)
# without a password.
seed_users() {
    seq 0 $(($2 - 1)) | awk -v prefix="${3-u}" -v step="${4:-1}" 'BEGIN { printf "[" }
        { id = prefix ($1 * step)
          printf "%s{\"id\":\"%s\",\"email\":\"%s@example.test\"}", (NR > 1 ? "," : ""), id, id }
        END { print "]" }' >"$1"
}

# start_server NAME [VAR=VALUE...]: starts the example with the given environment; stdout
# (which holds the demo mailer's emails) goes to $work/NAME.out.
start_server() {
    local name=$1
    shift
    : >"$work/$name.out"
    "${pinned[@]}" env LISTEN_ADDR=127.0.0.1:0 BENCH_BASELINE_ROUTE=1 "$@" \
        "$server_bin" >"$work/$name.out" 2>"$work/$name.err" &
    server_pid=$!
    local waited=0
    until head -1 "$work/$name.out" 2>/dev/null | grep -q listening; do
        if ! kill -0 "$server_pid" 2>/dev/null || ((waited > 1200)); then
            cat "$work/$name.err" >&2
            echo "the server did not start" >&2
            exit 1
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    # It binds before seeding, so wait for the banner's last line before loading it.
    until grep -q "emails are printed here" "$work/$name.out"; do
        kill -0 "$server_pid" 2>/dev/null || {
            cat "$work/$name.err" >&2
            exit 1
        }
        sleep 0.1
    done
    server_port=$(head -1 "$work/$name.out" | sed 's/.*127\.0\.0\.1:\([0-9]*\).*/\1/')
}

# load SCRIPT PATH_OR_EMPTY SECONDS CONNECTIONS [VAR=VALUE...]: runs wrk and prints its
# RESULT line (rps, p50, p99 in ms, requests, non-2xx answers, socket errors).
load() {
    local script=$1 path=$2 seconds=$3 conns=$4
    shift 4
    "${pinned[@]}" env LOAD_THREADS="$threads" LOAD_PATH="$path" "$@" \
        wrk -t"$threads" -c"$conns" -d"${seconds}s" --timeout 120s --latency -s "$lua/$script" \
        "http://127.0.0.1:$server_port" >"$work/wrk.txt" 2>&1 || {
        cat "$work/wrk.txt" >&2
        exit 1
    }
    children_ticks >"$work/ticks.txt"
    grep -q '^RESULT' "$work/wrk.txt" || {
        cat "$work/wrk.txt" >&2
        echo "wrk printed no RESULT line" >&2
        exit 1
    }
    echo "$(grep '^RESULT' "$work/wrk.txt" | sed 's/^RESULT //') generator_ticks=$(cat "$work/ticks.txt")"
}

field() { sed -n "s/.*\b$1=\([0-9.]*\).*/\1/p" <<<"$2"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
median() { tr ' ' '\n' | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
peak_rss_kib() { awk '/^VmHWM/ { print $2 }' "/proc/$server_pid/status"; }

# CPU time in clock ticks: of the whole machine (busy, not idle or waiting for I/O), of one
# process, and of the calling subshell's finished children (from the `times` builtin).
busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8; exit }' /proc/stat; }
process_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# `times` must run in the subshell whose children are counted, not in a command substitution.
children_ticks() {
    times >"$work/times.txt"
    awk -v hz="$(getconf CLK_TCK)" 'NR == 2 {
        split($1, u, /[ms]/); split($2, s, /[ms]/)
        printf "%d\n", (u[1] * 60 + u[2] + s[1] * 60 + s[2]) * hz }' "$work/times.txt"
}
# cpu_per_op TICKS OPERATIONS: microseconds of CPU per operation.
cpu_per_op() { awk -v t="$1" -v n="$2" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.0f", (n > 0 ? t / hz * 1e6 / n : 0) }'; }

# The tokens of every email the server printed so far, one per line.
tokens_of() { grep -o 'token=[A-Za-z0-9_-]*' "$work/$1.out" | cut -d= -f2; }

# expect_links FILE COUNT: fails unless the warm-up issued COUNT links (a slower machine may
# issue fewer in the warm-up's time; raise it then).
expect_links() {
    local issued
    issued=$(wc -l <"$1")
    if ((issued < $2)); then
        echo "the warm-up issued $issued links, $2 needed" >&2
        exit 1
    fi
}

machine() {
    say "== $(date -u '+%Y-%m-%d %H:%M UTC') on $(nproc) CPUs, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)"
    say "   $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
    say "   $(rustc --version), $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2)"
    say "   load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
    say "   wrk: $threads thread(s), $connections connections, ${duration}s per measurement"
}

# PUT /user/password beside the baseline handler, in rounds; fresh requests use users no
# request has touched yet, repeats use users whose link was sent a moment ago.
phase_put() {
    local label=$1
    shift
    local users=$((rounds * duration * 60000 + 20000))
    seed_users "$work/seed.json" "$users"
    start_server "$label" SEED_USERS="$work/seed.json" RESEND_COOLDOWN_SECS=3600 "$@"
    say ""
    say "-- $label: PUT /user/password, $users seeded users, cooldown 3600 s"

    load put.lua /bench/baseline 2 "$connections" USER_COUNT=20000 >/dev/null
    # Users u0 .. u19999 get their first link now; the repeat rows reuse them.
    load put.lua /user/password 2 "$connections" USER_COUNT=20000 >/dev/null

    local base_rps=() fresh_rps=() repeat_rps=() fresh_ratios=() repeat_ratios=() first=20000
    for round in $(seq 1 "$rounds"); do
        local base fresh repeat
        base=$(load put.lua /bench/baseline "$duration" "$connections" USER_COUNT=20000)
        fresh=$(load put.lua /user/password "$duration" "$connections" \
            FIRST_USER="$first" USER_COUNT=$((users - first)))
        if grep -q 'users reused: [1-9]' "$work/wrk.txt"; then
            say "   warning: the fresh row ran out of new users and repeated some"
        fi
        first=$((first + $(field requests "$fresh")))
        repeat=$(load put.lua /user/password "$duration" "$connections" USER_COUNT=20000)
        say "   round $round baseline: $base"
        say "   round $round fresh:    $fresh"
        say "   round $round repeat:   $repeat"
        base_rps+=("$(field rps "$base")")
        fresh_rps+=("$(field rps "$fresh")")
        repeat_rps+=("$(field rps "$repeat")")
        fresh_ratios+=("$(ratio "$(field rps "$fresh")" "$(field rps "$base")")")
        repeat_ratios+=("$(ratio "$(field rps "$repeat")" "$(field rps "$base")")")
    done

    say "   median req/s: baseline $(median <<<"${base_rps[*]}")," \
        "fresh $(median <<<"${fresh_rps[*]}"), repeat $(median <<<"${repeat_rps[*]}")"
    say "   median of the rounds' ratios to their baseline: fresh" \
        "$(median <<<"${fresh_ratios[*]}"), repeat $(median <<<"${repeat_ratios[*]}")"
    stop_server
}

phase_confirm() {
    # The first users get links to confirm with: 2,000 for each throughput round, then
    # per_slot for each round of PUT during confirms (more than two CPUs hash in its time, so
    # that the confirms never run out and turn into cheap refusals); the next 10,000 users make
    # the PUT traffic, all of it repeats inside the cooldown after this first pass.
    local per_slot=2500
    local linked=$((rounds * 2000 + latency_rounds * 2 * per_slot))
    seed_users "$work/seed.json" $((linked + 10000))
    start_server confirm SEED_USERS="$work/seed.json" RESEND_COOLDOWN_SECS=3600
    load put.lua /user/password 3 "$connections" USER_COUNT="$linked" >/dev/null
    tokens_of confirm >"$work/tokens.txt"
    expect_links "$work/tokens.txt" "$linked"
    load put.lua /user/password 2 "$connections" FIRST_USER="$linked" USER_COUNT=10000 >/dev/null
    say ""
    say "-- confirm: OWASP parameters, $(wc -l <"$work/tokens.txt") links issued"

    # Rounds of: the bare Argon2id rate (one thread, then one per CPU), then the server's
    # confirms per second, so that each ratio compares neighbours measured seconds apart.
    local round to_cores=() to_parallel=() bare_parallel=()
    for round in $(seq 1 "$rounds"); do
        local bare confirms
        bare=$("$(ls -t "$repo"/target/release/deps/argon2_rate-* | grep -v '\.d$' | head -1)" |
            grep '^RESULT' | sed 's/^RESULT //')
        sed -n "$(((round - 1) * 2000 + 1)),$((round * 2000))p" "$work/tokens.txt" \
            >"$work/confirm-tokens.txt"
        confirms=$(load confirm.lua "" "$duration" "$connections" \
            TOKEN_FILE="$work/confirm-tokens.txt")
        if grep -q 'past the last token: [1-9]' "$work/wrk.txt"; then
            say "   warning: the confirms ran out of links and sent refused ones"
        fi
        say "   round $round bare argon2id: $bare"
        say "   round $round confirm:       $confirms"
        to_cores+=("$(ratio "$(field ok_per_s "$confirms")" "$(field cores_over_time "$bare")")")
        to_parallel+=("$(ratio "$(field ok_per_s "$confirms")" "$(field parallel_rate "$bare")")")
        bare_parallel+=("$(ratio "$(field parallel_rate "$bare")" "$(field cores_over_time "$bare")")")
    done
    say "   confirms/s over cores/time-per-hash: ${to_cores[*]} (median $(median <<<"${to_cores[*]}"))"
    say "   confirms/s over the bare rate measured on all CPUs at once: ${to_parallel[*]}" \
        "(median $(median <<<"${to_parallel[*]}"))"
    say "   the bare rate on all CPUs over cores/time-per-hash (how near the machine comes to it):" \
        "${bare_parallel[*]} (median $(median <<<"${bare_parallel[*]}"))"

    # PUT traffic (repeats inside the cooldown) alone, then while confirms keep every hashing
    # thread busy, in rounds: light traffic (8 connections, each pausing 2 ms between an answer
    # and its next request: the server has CPU to spare), then saturating traffic (4
    # connections, no pause: the server and wrk take both CPUs without any confirm).
    local kind connections_for pause
    for kind in light saturating; do
        if [[ $kind == light ]]; then connections_for=8 pause=2; else connections_for=4 pause=0; fi
        local ratios=() confirm_rates=()
        for round in $(seq 1 "$latency_rounds"); do
            local alone busy first_token=$((rounds * 2000 + (round - 1) * 2 * per_slot + 1))
            [[ $kind == light ]] || first_token=$((first_token + per_slot))
            alone=$(load put.lua /user/password "$duration" "$connections_for" \
                FIRST_USER="$linked" USER_COUNT=10000 PAUSE_MS="$pause")
            sed -n "${first_token},$((first_token + per_slot - 1))p" "$work/tokens.txt" \
                >"$work/confirm-tokens.txt"
            env LOAD_THREADS=1 TOKEN_FILE="$work/confirm-tokens.txt" \
                wrk -t1 -c"$connections" -d"$((duration + 4))s" --timeout 120s \
                -s "$lua/confirm.lua" "http://127.0.0.1:$server_port" >"$work/wrk-confirm.txt" 2>&1 &
            local confirm_load=$!
            extra_pids+=("$confirm_load")
            sleep 2
            busy=$(load put.lua /user/password "$duration" "$connections_for" \
                FIRST_USER="$linked" USER_COUNT=10000 PAUSE_MS="$pause")
            wait "$confirm_load" || {
                cat "$work/wrk-confirm.txt" >&2
                exit 1
            }
            local meanwhile
            meanwhile=$(grep '^RESULT' "$work/wrk-confirm.txt" | sed 's/^RESULT //')
            if grep -q 'past the last token: [1-9]' "$work/wrk-confirm.txt"; then
                say "   warning: the confirms ran out of links and sent refused ones"
            fi
            say "   $kind PUT round $round alone:          $alone"
            say "   $kind PUT round $round during confirm: $busy"
            say "   $kind PUT round $round confirms:       $meanwhile"
            ratios+=("$(ratio "$(field p99_ms "$busy")" "$(field p99_ms "$alone")")")
            confirm_rates+=("$(field ok_per_s "$meanwhile")")
        done
        say "   $kind PUT, p99 during confirms over p99 alone: ${ratios[*]}" \
            "(median $(median <<<"${ratios[*]}")x); confirms/s meanwhile:" \
            "${confirm_rates[*]}"
    done
    stop_server
}

# Peak resident memory under 1,000 concurrent confirms, twice: with room in the hashing queue
# for all of them (what waiting costs), and with the default queue bound, beyond which
# confirms are refused at once with 501 server-busy (what a flood of clients that ignore
# Retry-After does to the confirms that get through).
phase_memory() {
    seed_users "$work/seed.json" 5000
    start_server memory SEED_USERS="$work/seed.json" RESEND_COOLDOWN_SECS=3600 \
        HASH_QUEUE_LIMIT=1000
    load put.lua /user/password 2 "$connections" USER_COUNT=5000 >/dev/null
    tokens_of memory >"$work/tokens.txt"
    expect_links "$work/tokens.txt" 5000
    local idle connected permits=$(nproc)
    idle=$(peak_rss_kib)

    # The same 1,000 connections sending confirms that are refused before any hashing (a
    # well-formed token nobody was sent): what the connections and requests cost by themselves.
    printf 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n' >"$work/unknown-token.txt"
    local refused
    refused=$(load confirm.lua "" 5 1000 TOKEN_FILE="$work/unknown-token.txt")
    connected=$(peak_rss_kib)

    say ""
    say "-- memory: 1000 concurrent confirms for ${duration}s, $(wc -l <"$work/tokens.txt") links," \
        "queue room for all of them"
    local confirms peak
    confirms=$(load confirm.lua "" "$duration" 1000 TOKEN_FILE="$work/tokens.txt")
    peak=$(peak_rss_kib)
    say "   refused first: $refused"
    say "   confirm:       $confirms"
    local hashing=$((permits * 19456 * 12 / 10))
    say "   peak RSS: $((idle / 1024)) MiB idle, $((connected / 1024)) MiB with 1000 refused" \
        "confirms, $((peak / 1024)) MiB with 1000 confirms; hashing allowance $permits x 19 MiB" \
        "x 1.2 = $((hashing / 1024)) MiB"
    say "   peak / (idle + allowance) = $(ratio "$peak" $((idle + hashing)));" \
        "peak / (1000 refused + allowance) = $(ratio "$peak" $((connected + hashing)))"
    stop_server

    # Every refusal uses up a link in this script (it cannot tell which request was refused),
    # so there must be links for every request the flood makes.
    local users=200000
    seed_users "$work/seed.json" "$users"
    start_server memory-bounded SEED_USERS="$work/seed.json" RESEND_COOLDOWN_SECS=3600
    load put.lua /user/password 15 "$connections" USER_COUNT="$users" >/dev/null
    tokens_of memory-bounded >"$work/tokens.txt"
    expect_links "$work/tokens.txt" "$users"
    local connections_cost=$((connected - idle))
    idle=$(peak_rss_kib)
    say "-- memory: 1000 concurrent confirms for ${duration}s, $(wc -l <"$work/tokens.txt") links," \
        "default queue bound ($permits x 64)"
    confirms=$(load confirm.lua "" "$duration" 1000 TOKEN_FILE="$work/tokens.txt")
    peak=$(peak_rss_kib)
    say "   confirm:       $confirms"
    say "   $(grep 'past the last token' "$work/wrk.txt")"
    say "   peak RSS: $((idle / 1024)) MiB after issuing the links, $((peak / 1024)) MiB with" \
        "1000 confirms; peak / (that + the 1000 connections' cost above + allowance) =" \
        "$(ratio "$peak" $((idle + connections_cost + hashing)))"
    stop_server
}

sql() { psql -qtA -v ON_ERROR_STOP=1 "$pg_url" "$@"; }

# fresh_database USERS PENDING: a new database whose schema the server creates, with users
# 0 .. USERS-1 (ids are plain numbers) and, for users 0 .. PENDING-1, a link sent two minutes
# ago, as other users' outstanding links would be.
fresh_database() {
    psql -q "$pg_server/postgres" -c "DROP DATABASE IF EXISTS $pg_database" >/dev/null
    psql -q "$pg_server/postgres" -c "CREATE DATABASE $pg_database" >/dev/null
    pg_databases+=("$pg_database")
    seed_users "$work/none.json" 1 "" 1
    start_server schema DATABASE_URL="$pg_url" SEED_USERS="$work/none.json"
    stop_server
    sql -c "INSERT INTO users (id, email) SELECT g::text, g || '@example.test'
            FROM generate_series(0, $1 - 1) g ON CONFLICT DO NOTHING"
    sql -c "INSERT INTO password_setup_pending
                (user_id, token_digest, issued_at, expires_at, sent_at, revision)
            SELECT g::text, sha256(g::text::bytea), now() - interval '2 minutes',
                   now() + interval '1 day', ARRAY[now() - interval '2 minutes'], 1
            FROM generate_series(0, $2 - 1) g"
    sql -c "VACUUM ANALYZE"
}

# pgbench_fresh FIRST SECONDS: transactions per second of request.sql from user FIRST on.
pgbench_fresh() {
    "${pinned[@]}" pgbench -n -M prepared -c "$connections" -j 1 -T "$2" -f "$lua/request.sql" \
        -D first="$1" -D clients="$connections" -D k=0 "$pg_url" >"$work/pgbench.txt" 2>&1 || {
        cat "$work/pgbench.txt" >&2
        exit 1
    }
    local tps processed
    tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$work/pgbench.txt")
    processed=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' \
        "$work/pgbench.txt")
    children_ticks >"$work/ticks.txt"
    echo "tps=$tps transactions=$processed generator_ticks=$(cat "$work/ticks.txt")"
}

# find_postmaster: sets pg_postmaster to the pid of the PostgreSQL server at LOAD_PG_URL, or
# fails unless that server runs on this machine and the script may move its processes (root).
# The pid file is trusted only if its pid is a postgres process working in that data folder.
find_postmaster() {
    local data_dir pid
    data_dir=$(psql -qtA "$pg_server/postgres" -c 'SHOW data_directory')
    pid=$(head -1 "$data_dir/postmaster.pid" 2>/dev/null) || pid=
    if [[ -z "$pid" || "$(cat "/proc/$pid/comm" 2>/dev/null)" != postgres ||
        "$(realpath "/proc/$pid/cwd" 2>/dev/null)" != "$(realpath "$data_dir")" ]]; then
        echo "postgres-pinned: no PostgreSQL postmaster of $data_dir found on this machine" \
            "(the server must run here, and the script as root); leave the phase out with" \
            "LOAD_PHASES" >&2
        exit 1
    fi
    if ((EUID != 0)); then
        echo "postgres-pinned needs root, to move PostgreSQL's processes; leave it out with" \
            "LOAD_PHASES" >&2
        exit 1
    fi
    pg_postmaster=$pid
}

# The CPUs this script may use, one number per line, from its own affinity list ("0-3,6").
own_cpus() {
    awk '/^Cpus_allowed_list/ { n = split($2, parts, ",")
        for (i = 1; i <= n; i++) { m = split(parts[i], ends, "-")
            for (cpu = ends[1]; cpu <= ends[m]; cpu++) print cpu } }' /proc/self/status
}

# pin_postgres: moves PostgreSQL's postmaster and the processes it has started (and with the
# postmaster, those it starts from now on) to the last CPU this script may use, and runs the
# server and the load generators on the others. unpin_postgres (also run on exit) gives each
# of those processes back the CPU list it had, and new ones the postmaster's.
pin_postgres() {
    local cpus=() pid
    mapfile -t cpus < <(own_cpus)
    if ((${#cpus[@]} < 2)); then
        echo "postgres-pinned needs at least 2 CPUs" >&2
        exit 1
    fi
    find_postmaster
    pg_cpu=${cpus[-1]}
    client_cpus=$(IFS=,; echo "${cpus[*]:0:${#cpus[@]}-1}")
    pg_affinity=()
    for pid in "$pg_postmaster" $(pgrep -P "$pg_postmaster"); do
        pg_affinity[pid]=$(taskset -c -p "$pid" 2>/dev/null | sed 's/.*: //') || true
    done
    echo "moving PostgreSQL (postmaster $pg_postmaster) to CPU $pg_cpu; should this script be" \
        "killed, give it back its CPUs with: taskset -a -c -p ${pg_affinity[pg_postmaster]}" \
        "<pid> for the postmaster and each of its processes" >&2
    postgres_affinity "$pg_cpu"
    pinned=(taskset -c "$client_cpus")
}

unpin_postgres() {
    pinned=()
    if [[ -n "$pg_postmaster" ]]; then
        postgres_affinity ||
            echo "could not give every PostgreSQL process back its CPUs (the postmaster's:" \
                "${pg_affinity[pg_postmaster]})" >&2
        pg_postmaster=
    fi
}

# postgres_affinity [CPUS]: gives the postmaster, then every process it has started, the CPU
# list CPUS, or without it the list each had before pin_postgres (the postmaster's for those
# started since). The postmaster goes first, so that a backend it forks meanwhile inherits the
# new list; a process that has exited by its turn is no failure.
postgres_affinity() {
    local pid cpus failed=0
    taskset -a -c -p "${1:-${pg_affinity[pg_postmaster]}}" "$pg_postmaster" >/dev/null || failed=1
    for pid in $(pgrep -P "$pg_postmaster"); do
        cpus=${1:-${pg_affinity[pid]:-${pg_affinity[pg_postmaster]}}}
        if ! taskset -a -c -p "$cpus" "$pid" >/dev/null 2>&1 && kill -0 "$pid" 2>/dev/null; then
            echo "could not set the CPUs of PostgreSQL's process $pid to $cpus" >&2
            failed=1
        fi
    done
    return "$failed"
}

# phase_postgres LABEL: PUT /user/password with PostgreSQL behind it, beside the baseline
# handler and beside pgbench running the store's statements for the same kind of request, at
# the same concurrency (LOAD_CONNECTIONS, 16 by default here: the example's pool size).
phase_postgres() {
    local label=$1
    local connections=${LOAD_CONNECTIONS:-16}
    # Room for 12,000 requests per second in each row, fresh users all the way.
    local per_round=$((duration * 12000))
    local users=$((rounds * 2 * per_round + 40000))
    # Users 0 .. 19999 have links already, so the pending table has rows and statistics
    # before the measured requests start inserting.
    fresh_database "$users" 20000
    # The server needs demo tokens only for the users its rows use: the even blocks.
    : >"$work/ids.txt"
    for round in $(seq 0 $((rounds - 1))); do
        seq $((40000 + 2 * round * per_round)) $((40000 + (2 * round + 1) * per_round - 1)) >>"$work/ids.txt"
    done
    seq 0 19999 >>"$work/ids.txt"
    awk 'BEGIN { printf "[" }
        { printf "%s{\"id\":\"%s\",\"email\":\"%s@example.test\"}", (NR > 1 ? "," : ""), $1, $1 }
        END { print "]" }' "$work/ids.txt" >"$work/seed.json"
    start_server "$label" DATABASE_URL="$pg_url" SEED_USERS="$work/seed.json" \
        RESEND_COOLDOWN_SECS=3600
    say ""
    say "-- $label${pg_postmaster:+ (PostgreSQL on CPU $pg_cpu, everything else on CPU $client_cpus)}: PUT /user/password, $users users in PostgreSQL $(sql -c 'SHOW server_version')," \
        "$connections connections (wrk and pgbench)"

    load put.lua /bench/baseline 2 "$connections" USER_PREFIX= USER_COUNT=20000 >/dev/null
    load put.lua /user/password 2 "$connections" USER_PREFIX= USER_COUNT=20000 >/dev/null
    pgbench_fresh 20000 2 >/dev/null

    local base_rps=() fresh_rps=() bench_tps=() to_base=() to_pgbench=()
    for round in $(seq 0 $((rounds - 1))); do
        local first=$((40000 + 2 * round * per_round)) base fresh bench
        base=$(load put.lua /bench/baseline "$duration" "$connections" USER_PREFIX= USER_COUNT=20000)
        local busy_before server_before busy_fresh server_fresh busy_bench
        busy_before=$(busy_ticks) server_before=$(process_ticks "$server_pid")
        fresh=$(load put.lua /user/password "$duration" "$connections" USER_PREFIX= \
            FIRST_USER="$first" USER_COUNT="$per_round")
        busy_fresh=$(($(busy_ticks) - busy_before))
        server_fresh=$(($(process_ticks "$server_pid") - server_before))
        if grep -q 'users reused: [1-9]' "$work/wrk.txt"; then
            say "   warning: the fresh row ran out of new users and repeated some"
        fi
        busy_before=$(busy_ticks)
        bench=$(pgbench_fresh $((first + per_round)) "$duration")
        busy_bench=$(($(busy_ticks) - busy_before))
        say "   round $((round + 1)) baseline: $base"
        say "   round $((round + 1)) fresh:    $fresh"
        say "   round $((round + 1)) pgbench:  $bench"
        # Where the two CPUs went, in microseconds per request or transaction: the rest of
        # the machine's busy time is PostgreSQL (and anything else running).
        local requests generator transactions bench_generator
        requests=$(field requests "$fresh") generator=$(field generator_ticks "$fresh")
        transactions=$(field transactions "$bench") bench_generator=$(field generator_ticks "$bench")
        say "   round $((round + 1)) CPU us per request: server $(cpu_per_op "$server_fresh" "$requests")," \
            "wrk $(cpu_per_op "$generator" "$requests"), the rest" \
            "$(cpu_per_op $((busy_fresh - server_fresh - generator)) "$requests"), all" \
            "$(cpu_per_op "$busy_fresh" "$requests"); per pgbench transaction: pgbench" \
            "$(cpu_per_op "$bench_generator" "$transactions"), the rest" \
            "$(cpu_per_op $((busy_bench - bench_generator)) "$transactions"), all" \
            "$(cpu_per_op "$busy_bench" "$transactions")"
        base_rps+=("$(field rps "$base")")
        fresh_rps+=("$(field rps "$fresh")")
        bench_tps+=("$(field tps "$bench")")
        to_base+=("$(ratio "$(field rps "$fresh")" "$(field rps "$base")")")
        to_pgbench+=("$(ratio "$(field rps "$fresh")" "$(field tps "$bench")")")
    done
    say "   median: baseline $(median <<<"${base_rps[*]}") req/s, fresh" \
        "$(median <<<"${fresh_rps[*]}") req/s, pgbench $(median <<<"${bench_tps[*]}") tps"
    say "   median of the rounds' ratios: fresh / baseline $(median <<<"${to_base[*]}")," \
        "fresh / pgbench $(median <<<"${to_pgbench[*]}")"
    stop_server
}

# plan_scans FILE: per statement of plans.sql's output, the indexes its plan scans, and any
# table it scans sequentially.
plan_scans() {
    awk '/^[a-z_]+$/ { if (name) printf "%s: %s; ", name, list; name = $1; list = ""; next }
        /Index (Only )?Scan using/ { match($0, /using [^ ]+/)
            list = list (list ? ", " : "") substr($0, RSTART + 6, RLENGTH - 6) }
        /Seq Scan on/ { match($0, /on [^ ]+/)
            list = list (list ? ", " : "") "SEQUENTIAL " substr($0, RSTART + 3, RLENGTH - 3) }
        END { printf "%s: %s\n", name, list }' "$1"
}

# The request path (every request issues a link: no cooldown) over 10,000 users spread
# evenly across tables of 10 thousand and of 1 million users, each with a pending row. One
# server per size, both running; the rounds alternate between them so that whatever else
# the machine does weighs on both alike.
phase_growth() {
    local connections=${LOAD_CONNECTIONS:-16}
    local sizes=(10000 1000000) ports=() pids=()
    say ""
    say "-- growth: PUT /user/password issuing a link every time, 10000 users spread over the table"
    for size in "${sizes[@]}"; do
        local pg_database=password_setup_load_$size
        local pg_url=$pg_server/$pg_database
        fresh_database "$size" "$size"
        seed_users "$work/seed-$size.json" 10000 "" $((size / 10000))
        start_server "growth-$size" DATABASE_URL="$pg_url" SEED_USERS="$work/seed-$size.json" \
            RESEND_COOLDOWN_SECS=0 DAILY_EMAIL_CAP=100000
        # From here on cleanup stops it through extra_pids, whatever fails.
        extra_pids+=("$server_pid")
        say "   $size users: $(sql -c "SELECT pg_size_pretty(pg_database_size('$pg_database'))")"
        # The plans a pooled connection keeps: index scans only, whatever the table's size.
        sql -f "$lua/plans.sql" >"$work/plans-$size.txt"
        say "   generic plans, indexes used: $(plan_scans "$work/plans-$size.txt")"
        if grep -q 'Seq Scan' "$work/plans-$size.txt"; then
            cat "$work/plans-$size.txt" >&2
            echo "a statement scans a table sequentially" >&2
            exit 1
        fi
        ports+=("$server_port")
        pids+=("$server_pid")
        server_pid=
    done

    local small=() large=() ratios=()
    for round in $(seq 0 "$rounds"); do
        local index rows=()
        for index in 0 1; do
            local size=${sizes[$index]} row
            server_port=${ports[$index]}
            row=$(load put.lua /user/password "$duration" "$connections" USER_PREFIX= \
                USER_STEP=$((size / 10000)) USER_COUNT=10000)
            rows+=("$(field rps "$row")")
            # Round 0 warms both servers up and is not counted.
            if ((round > 0)); then
                say "   round $round, $size users: $row"
            fi
        done
        if ((round > 0)); then
            small+=("${rows[0]}")
            large+=("${rows[1]}")
            ratios+=("$(ratio "${rows[1]}" "${rows[0]}")")
        fi
    done
    say "   median req/s: 10k users $(median <<<"${small[*]}"), 1M users $(median <<<"${large[*]}");" \
        "median of the rounds' 1M / 10k: $(median <<<"${ratios[*]}")"
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    extra_pids=()
}

main() {
    local known=" put put-quiet confirm memory postgres postgres-pinned growth " phase
    for phase in $phases; do
        if [[ $known != *" $phase "* ]]; then
            echo "unknown phase $phase; the phases are:$known" >&2
            exit 2
        fi
    done
    command -v wrk >/dev/null || {
        echo "wrk is missing: apt-get install wrk" >&2
        exit 1
    }
    if [[ " $phases " == *" postgres"* || " $phases " == *" growth "* ]]; then
        export PGOPTIONS='-c client_min_messages=warning' # no NOTICE for DROP ... IF EXISTS
        command -v psql >/dev/null && command -v pgbench >/dev/null || {
            echo "the postgres and growth phases need psql and pgbench (apt-get install" \
                "postgresql-client); leave them out with LOAD_PHASES" >&2
            exit 1
        }
        psql -qtA "$pg_server/postgres" -c 'SELECT 1' >/dev/null || {
            echo "no PostgreSQL server answers at $pg_server (set LOAD_PG_URL)" >&2
            exit 1
        }
    fi
    if [[ " $phases " == *" postgres-pinned "* ]]; then
        (find_postmaster) || exit 1
    fi
    mkdir -p "$(dirname "$results")"
    if [[ -z "${LOAD_SKIP_BUILD:-}" ]]; then
        cargo build --release --quiet --example axum --bench argon2_rate
    fi
    machine
    for phase in $phases; do
        case $phase in
        put) phase_put put-memory ;;
        put-quiet) phase_put put-memory-quiet LOG_LEVEL=warn ;;
        confirm) phase_confirm ;;
        memory) phase_memory ;;
        postgres) phase_postgres postgres ;;
        postgres-pinned)
            pin_postgres
            phase_postgres postgres-pinned
            unpin_postgres
            ;;
        growth) phase_growth ;;
        esac
    done
}

main
