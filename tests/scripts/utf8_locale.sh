# covers: a UTF-8 locale (C.UTF-8): ${#v} counts characters, case conversion, printf %q, sorting
# env: LC_ALL=C.UTF-8
v="héllo wörld ✓"
echo "${#v} ${v^^} ${v:1:3}"
printf '%q\n' "$v"
printf 'b\né\na\n' | sort
[[ é == ? ]] && echo one-char
