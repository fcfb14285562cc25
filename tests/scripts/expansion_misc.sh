# covers: brace expansion, tilde, quoting, $'...' strings, word splitting of unquoted expansions
echo {a,b}{1..3}
echo {01..10..3} {z..v}
mkdir -p d/{x,y}/{1,2}
find d | sort
echo ~ | sed "s|$HOME|HOME|"
echo $'tab\there' $'\x41\u00e9'
x="one   two three"
printf '<%s>' $x; echo
printf '<%s>' "$x"; echo
set -- "a b" c
printf '<%s>' "$@"; echo
printf '<%s>' $*; echo
printf '<%s>' "$*"; echo
echo "nested $(echo "inner $(echo deep)")"
