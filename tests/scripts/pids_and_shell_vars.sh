# covers: $$ vs BASHPID in subshells, $- , SHLVL-independent checks, RANDOM seeding determinism
[[ $$ == "$BASHPID" ]] && echo "top: same"
( [[ $$ != "$BASHPID" ]] && echo "subshell: differs" )
echo "$-" | grep -q h && echo hashall
RANDOM=42; a=$RANDOM; RANDOM=42; b=$RANDOM
[[ $a == "$b" ]] && echo "seeded random repeats"
echo "${BASH_VERSINFO[0]}" > version.txt
[[ -n $BASH_VERSION ]] && echo have-version
echo "$PPID" | grep -qE '^[0-9]+$' && echo ppid-numeric
