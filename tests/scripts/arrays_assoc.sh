# covers: associative arrays (declare -A), keys, values, membership, iteration in sorted order
declare -A color=([apple]=red [banana]=yellow)
color[cherry]="dark red"
for k in $(printf '%s\n' "${!color[@]}" | sort); do
    echo "$k => ${color[$k]}"
done
[[ -v color[apple] ]] && echo has apple
[[ -v color[grape] ]] || echo no grape
unset 'color[banana]'
echo "count ${#color[@]}"
declare -A counts
for w in a b a c b a; do counts[$w]=$(( ${counts[$w]:-0} + 1 )); done
for k in a b c; do echo "$k ${counts[$k]}"; done
