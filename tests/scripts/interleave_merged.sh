# covers: stdout and stderr merged with exec 2>&1: order of builtin and external writes on both streams
exec 2>&1
for i in 1 2 3; do
    echo "out $i"
    echo "err $i" >&2
    ls "missing$i"
    /bin/echo "ext $i"
done
printf 'no newline' ; echo " <- then newline" >&2
