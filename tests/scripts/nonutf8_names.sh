# covers: file names with bytes >= 0x80 (invalid UTF-8): created, globbed, listed, renamed, read back
name=$(printf 'caf\xe9')
other=$(printf '\xff\xfe-bin')
echo data > "$name.txt"
touch "$other"
mkdir "$(printf 'dir\x80')"
echo inside > "$(printf 'dir\x80')/$(printf '\xc3\x28')"
ls | od -c | head -20
for f in *; do printf '%s\n' "$f" | od -An -tx1; done
mv "$name.txt" "$(printf 'renamed\xa0.txt')"
cat renamed*.txt
find . -type f | LC_ALL=C sort | od -c
ln -s "$(printf '\xe9target')" link
readlink link | od -An -tx1
