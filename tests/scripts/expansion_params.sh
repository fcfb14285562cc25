# covers: ${v//a/b}, ${v/#..}, ${v/%..}, case modification, substrings, #/##/%/%%, defaults, indirection
v=banana/apple.tar.gz
echo "${v//a/A}" "${v/a/_}" "${v/#b/B}" "${v/%gz/xz}"
echo "${v^^}" "${v,,}" "${v^}"
echo "${#v}" "${v:3}" "${v:2:4}" "${v: -6}"
echo "${v#*/}" "${v##*.}" "${v%.*}" "${v%%.*}"
unset u; empty=
echo "[${u:-def}] [${empty:-def}] [${empty-def}] [${u+set}] [${v:+set}]"
echo "${w:=assigned}"; echo "w=$w"
name=v; echo "${!name}"
arr=(one two three)
echo "${arr[@]/o/0}" "${arr[@]^}" "${#arr[1]}"
p=/usr/local/bin/tool
echo "${p##*/} ${p%/*}"
s="a  b"
echo ${s// /-}
printf '%s\n' "${v@Q}" "${arr[@]@Q}"
