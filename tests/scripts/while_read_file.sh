# covers: while IFS= read -r loops over a file: spaces, backslashes, last line without newline, fields
# setup: printf 'alpha beta\n  leading spaces\nback\\slash\n\nlast-no-newline' > in.txt
# setup: printf 'a:1:x\nb:2:y\n' > fields.txt
n=0
while IFS= read -r line || [[ -n $line ]]; do
    n=$((n + 1))
    printf '%d [%s]\n' "$n" "$line"
done < in.txt
while read line; do echo "raw [$line]"; done < in.txt
while IFS=: read -r k v rest; do
    echo "$k -> $v ($rest)" >> parsed.txt
done < fields.txt
cat parsed.txt
