#!/usr/bin/env bash
# Fails when a tracked file holds something shaped like a real credential:
#   OpenAI    sk- + 48 (legacy), sk-proj- / sk-svcacct- / sk-admin- + 80 or more
#   Anthropic sk-ant-api03- / sk-ant-admin01- + 80 or more
#   Google    AIza + 35
#   AWS       AKIA / ASIA + 16
#   Slack     xoxb- / xoxp- / xoxa- / xoxs- tokens, and incoming-webhook URLs
#   GitHub    ghp_ / gho_ / ghu_ / ghs_ / ghr_ + 36, github_pat_ + 82
#   PEM       -----BEGIN ... PRIVATE KEY-----
#
# Allowed (obviously fake test data):
#   - a match that contains TEST, FAKE, EXAMPLE or DUMMY (any case), e.g. AKIAIOSFODNN7EXAMPLE;
#   - a file listed in scripts/secret-scan.allow (one glob a line, with a `# reason`).
# A finding is printed as path:line, the kind of credential and the first characters only
# (the scan never prints a whole secret).
#
# Usage:
#   scripts/secret-scan.sh              self-test, then scan this repository's tracked files
#   scripts/secret-scan.sh --self-test  only the self-test: plants one key of each kind in a
#                                       scratch git repository and checks each is caught and
#                                       the allowed ones are not
# Exit: 0 clean, 1 credential found (or self-test failed), 2 usage error.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO="$PWD"

# kind|extended regex (git grep -E). Keep the patterns free of anything they would match.
PATTERNS=(
    'openai-key|sk-[A-Za-z0-9]{48}'
    'openai-project-key|sk-(proj|svcacct|admin)-[A-Za-z0-9_-]{80,}'
    'anthropic-key|sk-ant-(api|admin)[0-9]{2}-[A-Za-z0-9_-]{80,}'
    'google-api-key|AIza[0-9A-Za-z_-]{35}'
    'aws-access-key-id|(AKIA|ASIA)[0-9A-Z]{16}'
    'slack-token|xox[bpas]-[0-9]{6,}-[0-9A-Za-z-]{10,}'
    'slack-webhook|hooks\.slack\.com/services/T[A-Z0-9]{6,}/B[A-Z0-9]{6,}/[A-Za-z0-9]{16,}'
    'github-token|gh[pousr]_[A-Za-z0-9]{36}'
    'github-fine-grained-token|github_pat_[A-Za-z0-9_]{82}'
    'private-key|-----BEGIN ([A-Z0-9]+ )*PRIVATE KEY( BLOCK)?-----'
)
FAKE_WORDS='test|fake|example|dummy'

# scan ROOT ALLOW_FILE: prints findings, returns 1 if any.
scan() {
    local root="$1" allow_file="$2" entry kind regex line path rest match found=0
    local -a globs=()
    if [[ -f "$allow_file" ]]; then
        while IFS= read -r line || [[ -n "$line" ]]; do
            line="${line%%#*}"
            line="${line#"${line%%[![:space:]]*}"}"
            line="${line%"${line##*[![:space:]]}"}"
            [[ -n "$line" ]] && globs+=("$line")
        done <"$allow_file"
    fi
    for entry in "${PATTERNS[@]}"; do
        kind="${entry%%|*}"
        regex="${entry#*|}"
        # path:line:match for every match in tracked, non-binary files.
        while IFS= read -r line; do
            path="${line%%:*}"
            rest="${line#*:}"
            match="${rest#*:}"
            rest="${rest%%:*}"
            if grep -qiE "$FAKE_WORDS" <<<"$match"; then
                continue
            fi
            local allowed=0 g
            for g in "${globs[@]}"; do
                # shellcheck disable=SC2053 # the allow-list holds globs
                if [[ "$path" == $g ]]; then
                    allowed=1
                    break
                fi
            done
            ((allowed)) && continue
            printf 'secret-scan: %s:%s: %s: %s... (%d chars)\n' \
                "$path" "$rest" "$kind" "${match:0:8}" "${#match}"
            found=1
        done < <(git -C "$root" grep -nIoE -e "$regex" 2>/dev/null || true)
    done
    return "$found"
}

# A random token of N characters without the letters of the allow-list words, so a planted
# key is never taken for a fake one.
rand() {
    local n="$1" out=""
    while ((${#out} < n)); do
        out+="$(LC_ALL=C tr -dc 'A-HJ-SUVWZ0-9abcghijlnoqrvwz' </dev/urandom | head -c "$n")"
    done
    printf '%s' "${out:0:n}"
}

self_test() {
    local dir out rc=0 f ok=1
    dir="$(mktemp -d)"
    # shellcheck disable=SC2064 # expand $dir now
    trap "rm -rf '$dir'" RETURN
    git -C "$dir" init -q
    mkdir -p "$dir/src" "$dir/fixtures"
    # One planted credential of each kind, built at run time (this script holds none).
    printf 'let key = "%s";\n' "sk-$(rand 48)" >"$dir/src/openai.rs"
    printf 'OPENAI_API_KEY=%s\n' "sk-proj-$(rand 120)" >"$dir/src/openai-project.env"
    printf 'key: %s\n' "sk-ant-api03-$(rand 95)" >"$dir/src/anthropic.yaml"
    printf 'url = "https://x.test/v1?key=%s"\n' "AIza$(rand 35)" >"$dir/src/gemini.toml"
    printf 'aws_access_key_id = %s\n' "AKIA$(rand 16 | tr 'a-z' 'A-Z')" >"$dir/src/aws.ini"
    printf 'token: %s\n' "xoxb-$(rand 12 | tr -dc 0-9)1234567-$(rand 24)" >"$dir/src/slack.md"
    printf 'webhook = "https://hooks.slack.com/services/T%s/B%s/%s"\n' \
        "$(rand 8 | tr 'a-z' 'A-Z')" "$(rand 8 | tr 'a-z' 'A-Z')" "$(rand 24)" >"$dir/src/slack-webhook.toml"
    printf 'GITHUB_TOKEN=%s\n' "ghp_$(rand 36)" >"$dir/src/github.sh"
    printf 'GITHUB_TOKEN=%s\n' "github_pat_$(rand 82)" >"$dir/src/github-fine.sh"
    printf -- '-----BEGIN %s-----\nMIIB\n' "OPENSSH PRIVATE KEY" >"$dir/src/id_ed25519"
    # Fake ones that must pass: a fake word in the token, or an allow-listed path.
    printf 'AKIAIOSFODNN7EXAMPLE sk-%s\n' "TEST$(rand 44)" >"$dir/src/fakes.rs"
    printf 'key = "AIza%s"\n' "FAKE$(rand 31)" >>"$dir/src/fakes.rs"
    printf -- '-----BEGIN %s-----\n' "RSA PRIVATE KEY" >"$dir/fixtures/localhost.key"
    printf 'fixtures/*.key  # a test server key\n' >"$dir/allow"
    git -C "$dir" add -A
    out="$(scan "$dir" "$dir/allow")" || rc=$?
    for f in openai.rs openai-project.env anthropic.yaml gemini.toml aws.ini slack.md \
        slack-webhook.toml github.sh github-fine.sh id_ed25519; do
        if ! grep -q "^secret-scan: src/$f:" <<<"$out"; then
            echo "secret-scan: self-test FAILED: the key planted in src/$f was not caught" >&2
            ok=0
        fi
    done
    if grep -qE 'src/fakes\.rs|fixtures/localhost\.key' <<<"$out"; then
        echo "secret-scan: self-test FAILED: an allowed fake was reported:" >&2
        echo "$out" >&2
        ok=0
    fi
    if ((rc != 1)); then
        echo "secret-scan: self-test FAILED: the scan of planted keys exited $rc, not 1" >&2
        ok=0
    fi
    # Nothing whole leaks into the report: at most 8 characters of each match.
    if grep -qE 'sk-[A-Za-z0-9]{20}|AIza[0-9A-Za-z_-]{20}' <<<"$out"; then
        echo "secret-scan: self-test FAILED: the report prints a secret" >&2
        ok=0
    fi
    # A clean tree passes.
    git -C "$dir" rm -q -r --cached src
    if ! scan "$dir" "$dir/allow" >/dev/null; then
        echo "secret-scan: self-test FAILED: a tree with only allowed fakes was reported" >&2
        ok=0
    fi
    ((ok)) || return 1
    echo "secret-scan: self-test ok (10 planted credentials caught, 3 allowed fakes passed)"
}

case "${1:-}" in
    --self-test) self_test ;;
    "")
        self_test
        if scan "$REPO" "$REPO/scripts/secret-scan.allow"; then
            echo "secret-scan: ok: no credential in tracked files"
        else
            echo "secret-scan: FAILED: credentials above (if one is a fake, put TEST or FAKE in it," \
                "or list its file in scripts/secret-scan.allow with the reason)" >&2
            exit 1
        fi
        ;;
    *)
        echo "usage: $0 [--self-test]" >&2
        exit 2
        ;;
esac
