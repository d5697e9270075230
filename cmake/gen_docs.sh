#!/bin/sh
# gen_docs.sh RADDINO OUTDIR VERSION — man pages and shell completion made from the built
# program's own --help text, so that they never disagree with it:
#   OUTDIR/man1/raddino.1           from `raddino --help` (the command list)
#   OUTDIR/man1/raddino-CMD.1       from `raddino CMD --help`, one per command of that list
#   OUTDIR/completion/raddino       bash: the commands, and each command's options
#   OUTDIR/completion/_raddino      zsh: the same
# The help texts share one layout (cli/*.c): "usage: ..." lines, paragraphs, then "options:"
# (or "X options:") sections of "  --opt ARG   text" entries with indented continuations.
# Run by CMake after the program is linked (target raddino_docs). POSIX sh + awk only.
# Not help2man: it turns one program's GNU-style --help into one page, while ours has a help
# text per command with sections of its own ("info options:"), and the completion scripts come
# from the same parse; this is ~150 lines with no build dependency beyond the shell.
set -eu
prog=$1
out=$2
version=$3
mkdir -p "$out/man1" "$out/completion"

# The commands: first words of the entries of the "commands:" section of raddino --help.
commands=$("$prog" --help | awk '
    /^commands:/ { on = 1; next }
    on && /^$/ { exit }
    on && /^  [a-z]/ { print $1 }' | awk '!seen[$0]++')
[ -n "$commands" ] || { echo "gen_docs.sh: no commands in '$prog --help'" >&2; exit 1; }

# to_roff NAME SUMMARY < help text > page
to_roff() {
    awk -v name="$1" -v summary="$2" -v version="$version" '
    function esc(s) {
        gsub(/\\/, "\\e", s)
        gsub(/-/, "\\-", s)
        if (s ~ /^[.\047]/) s = "\\&" s
        return s
    }
    BEGIN {
        up = toupper(name)
        cmd = name; sub(/-/, " ", cmd)
        printf ".\\\" Generated from `%s --help` by cmake/gen_docs.sh; do not edit.\n", cmd
        printf ".TH %s 1 \"\" \"raddino %s\" \"User Commands\"\n", up, version
        printf ".SH NAME\n%s \\- %s\n", esc(name), esc(summary)
        state = "start"
    }
    state == "start" && /^usage: / {
        print ".SH SYNOPSIS"; print ".nf"
        sub(/^usage: /, ""); print esc($0); state = "usage"; next
    }
    state == "usage" && /^       [a-z]/ { sub(/^ +/, ""); print esc($0); next }
    state == "usage" { print ".fi"; print ".SH DESCRIPTION"; state = "body" }
    state == "start" { next }
    /^$/ { blank = 1; next }
    # A section heading: "options:", "commands:", "info options:", "exit status:"...
    /^[A-Za-z][A-Za-z0-9 _-]*:$/ {
        h = $0; sub(/:$/, "", h)
        if (h == "options" || h == "commands") print ".SH " toupper(h)
        else print ".SS \"" esc(h) "\""
        blank = 0; next
    }
    # An entry: two spaces, the term, two or more spaces, the text.
    /^  [^ ]/ {
        line = substr($0, 3)
        if (match(line, /  +/)) {
            term = substr(line, 1, RSTART - 1); text = substr(line, RSTART + RLENGTH)
        } else { term = line; text = "" }
        print ".TP"; print "\\fB" esc(term) "\\fR"
        if (text != "") print esc(text)
        blank = 0; next
    }
    # Continuation of an entry (deeper indentation) or of a paragraph.
    /^   +/ && !blank { sub(/^ +/, ""); print esc($0); next }
    # A paragraph line; after a blank line it starts a new paragraph.
    { if (blank) print ".PP"; blank = 0; sub(/^ +/, ""); print esc($0) }
    END { if (state == "usage") print ".fi" }
    '
}

summary_of() {   # the command's line in the command list
    "$prog" --help | awk -v c="$1" '
        /^commands:/ { on = 1; next }
        on && $1 == c { sub(/^  [a-z-]+( [a-z]+)?  +/, ""); if (s == "") s = $0; else s = s "; " $0 }
        END { print s }'
}

{
    "$prog" --help | to_roff raddino "RAD-DINO chest X-ray embeddings, search and clustering"
    echo ".SH SEE ALSO"
    first=1
    for c in $commands; do
        if [ $first = 1 ]; then first=0; else printf ',\n'; fi
        printf '.BR raddino\\-%s (1)' "$c"
    done
    printf '\n'
} > "$out/man1/raddino.1"

for c in $commands; do
    "$prog" "$c" --help | to_roff "raddino-$c" "$(summary_of "$c")" > "$out/man1/raddino-$c.1"
    printf '.SH SEE ALSO\n.BR raddino (1)\n' >> "$out/man1/raddino-$c.1"
done

options_of() {   # every --long and -x option the command's help lists
    "$prog" "$1" --help | awk '
        /^  -/ {
            line = substr($0, 3); sub(/  +.*/, "", line)
            n = split(line, parts, /, /)
            for (i = 1; i <= n; i++) { split(parts[i], w, " "); print w[1] }
        }' | awk '!seen[$0]++' | tr '\n' ' ' | sed 's/ $//'
}

# bash
{
    echo "# bash completion for raddino; generated from its --help by cmake/gen_docs.sh."
    echo "_raddino()"
    echo "{"
    echo '    local cur=${COMP_WORDS[COMP_CWORD]} opts'
    echo '    if [ "$COMP_CWORD" -eq 1 ]; then'
    echo "        COMPREPLY=(\$(compgen -W \"$(echo $commands) --help --version\" -- \"\$cur\"))"
    echo "        return"
    echo "    fi"
    echo '    case ${COMP_WORDS[1]} in'
    for c in $commands; do
        echo "    $c) opts=\"$(options_of "$c")\" ;;"
    done
    echo '    *) opts="" ;;'
    echo "    esac"
    echo '    case ${COMP_WORDS[1]} in'
    echo '    model) if [ "$COMP_CWORD" -eq 2 ]; then COMPREPLY=($(compgen -W "info fetch" -- "$cur")); return; fi ;;'
    echo "    esac"
    echo '    if [[ $cur == -* ]]; then'
    echo '        COMPREPLY=($(compgen -W "$opts" -- "$cur"))'
    echo "    else"
    echo '        compopt -o filenames 2>/dev/null'
    echo '        COMPREPLY=($(compgen -f -- "$cur"))'
    echo "    fi"
    echo "}"
    echo "complete -F _raddino raddino"
} > "$out/completion/raddino"

# zsh
{
    echo "#compdef raddino"
    echo "# zsh completion for raddino; generated from its --help by cmake/gen_docs.sh."
    echo "local -a commands opts"
    printf "commands=("
    for c in $commands; do
        s=$(summary_of "$c" | sed "s/'/'\\\\''/g; s/:/\\\\:/g")
        printf "\n    '%s:%s'" "$c" "$s"
    done
    printf "\n)\n"
    echo 'if (( CURRENT == 2 )); then'
    echo "    _describe 'command' commands"
    echo "    return"
    echo "fi"
    echo 'case $words[2] in'
    for c in $commands; do
        echo "    $c) opts=($(options_of "$c")) ;;"
    done
    echo "esac"
    echo 'if [[ $words[2] == model && CURRENT == 3 ]]; then compadd info fetch; return; fi'
    echo 'if [[ $PREFIX == -* ]]; then compadd -a opts; else _files; fi'
} > "$out/completion/_raddino"
