# covers: unexpected end of file (unclosed quote / missing fi) -> bash's message and exit 2
echo start
if true; then
    echo "unterminated
fi
