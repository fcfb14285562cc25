# covers: CRLF line endings: bash sees \r in words and commands (errors included)
echo crlf
x=1
echo "[$x]" | od -c | head -1
