# covers: select reading choices from stdin, menu printed on stderr, REPLY, end of input
# stdin: 2
# stdin: 9
# stdin: 1
PS3='pick: '
select x in apple banana; do
    echo "REPLY=$REPLY x=${x:-none}"
    [[ $REPLY == 1 ]] && break
done
echo "after select $?"
