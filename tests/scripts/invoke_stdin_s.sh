# covers: script on stdin with -s and arguments ($0 is the shell, $1.. the args)
# invoke: stdin-s
# args: p1 'p 2'
echo "#=$# 1=$1 2=$2"
echo "0 is ${0##*/}"
x=$(echo from-subst)
echo "$x"
ls missing
