# covers: printf builtin formats (%s %d %x %05.2f %b %q %-10s|), printf -v, reuse of the format
printf '%s|%d|%x|%05.2f\n' str 42 255 3.14159
printf '%-6s|%6s|\n' ab cd
printf '%b\n' 'a\tb\x41'
printf '%q\n' "it's a \$test"
printf 'rep %s\n' a b c
printf -v out '%03d-%s' 7 seven; echo "$out"
printf '%c%c\n' hello world
printf '%d\n' "'A"
printf '%s\n' "no newline" | od -c | head -2
printf 'bad %d\n' notanumber; echo "status $?"
