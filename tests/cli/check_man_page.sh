#!/bin/sh
# The tlm(1) man page (docs/tlm.1) in step with the program's help: every
# command that `tlm --help` lists has its section (`.SS "tlm COMMAND ...`),
# and every option that `tlm COMMAND --help` prints (long and short) is
# named in that section. -h/--help is named once, under "Every command".
#   check_man_page.sh TLM MAN_PAGE
set -eu
tlm=$1
page=$2

# The page with roff's escaped hyphens (\-) and font changes (\fB) undone.
plain=$(sed -e 's/\\-/-/g' -e 's/\\f[BIRP]//g' "$page")
commands=$("$tlm" --help | sed -n 's/^  \([a-z][a-z0-9-]*\) .*/\1/p')
[ -n "$commands" ] || { echo "man page: no commands in tlm --help"; exit 1; }

missing=0
checked=0
for command in $commands; do
    section=$(printf '%s\n' "$plain" \
        | awk -v head=".SS \"tlm $command" '
            index($0, head) == 1 && (length($0) == length(head) ||
                substr($0, length(head) + 1, 1) ~ /[ "]/) { inside = 1; next }
            /^\.S[SH] / { inside = 0 }
            inside { print }')
    if [ -z "$section" ]; then
        echo "man page: no section for 'tlm $command' in $page"
        missing=$((missing + 1))
        continue
    fi
    # Options are the words that begin a line of the help's option list.
    options=$("$tlm" "$command" --help \
        | sed -n 's/^  \(-[a-zA-Z]\), \(--[a-z0-9-]*\).*/\1 \2/p; s/^      \(--[a-z0-9-]*\).*/\1/p')
    for option in $options; do
        case $option in -h | --help) continue ;; esac
        checked=$((checked + 1))
        # As a word: --seed must not be found inside --seeds.
        if ! printf '%s\n' "$section" | grep -q -e "\(^\|[^a-z0-9-]\)$option\([^a-z0-9-]\|$\)"; then
            echo "man page: 'tlm $command --help' has $option, the '$command' section of $page does not"
            missing=$((missing + 1))
        fi
    done
done
if [ "$missing" -ne 0 ]; then
    echo "man page: $missing missing (edit $page)"; exit 1
fi
echo "man page: $(printf '%s\n' "$commands" | wc -l) commands and $checked options of the help are all in $page"
