# covers: declare -p/-i/-l/-u/-x output formats, integer attribute arithmetic, typeset
declare -i n=5; n+=3; echo "$n"
declare -l lower=MiXeD; declare -u upper=MiXeD; echo "$lower $upper"
declare -a arr=(x "y z"); declare -A map=([k]=v)
declare -p n lower arr map
declare -x EXP=1; declare -p EXP
typeset s=str; declare -p s
declare -r ro=1; declare -p ro
declare -p undefined_var 2>&1 | sed 's/^.*declare:/declare:/'
