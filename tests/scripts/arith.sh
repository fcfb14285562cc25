# covers: (( )) and $(( )): operators, increments, ternary, bases, let, exit status of (( 0 ))
i=5
(( i++ )); (( i += 10 )); echo $i
echo $(( 7 / 2 )) $(( 7 % 3 )) $(( 2 ** 10 )) $(( -7 / 2 ))
echo $(( i > 3 ? 100 : 200 ))
echo $(( 0x1f )) $(( 8#17 )) $(( 2#1010 ))
(( 0 )); echo "zero -> $?"
(( 42 )); echo "nonzero -> $?"
let "j = i * 2" "k = j - 1"; echo $j $k
n=$(seq 10 | wc -l)
echo $(( n * n ))
for (( a = 1, b = 10; a < b; a += 3, b-- )); do echo "$a $b"; done
x=3; (( x == 3 )) && echo eq
echo $(( (1 << 4) | 3 )) $(( ~0 )) $(( !0 ))
