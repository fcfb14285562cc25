# covers: indexed arrays: literals, append, slices, unset, keys, length, passing to external commands
arr=(alpha "beta gamma" delta)
echo "${#arr[@]}" "${arr[1]}" "${arr[-1]}"
arr+=(epsilon)
arr[10]=ten
printf '<%s>\n' "${arr[@]}"
echo "keys: ${!arr[@]}"
unset 'arr[2]'
echo "after unset: ${#arr[@]} ${arr[*]}"
echo "slice: ${arr[@]:1:2}"
printf '%s\n' "${arr[@]}" | sort -r
/usr/bin/printf '[%s]' "${arr[@]}"; echo
empty=()
echo "empty: ${#empty[@]} <${empty[*]}>"
read -ra words <<< "one two  three"
echo "${words[2]} ${#words[@]}"
