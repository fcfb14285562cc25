# covers: [[ ]] string/pattern/regex tests, BASH_REMATCH, file tests, && || ! inside, exit statuses
# setup: touch file.txt; mkdir dir
x=hello.tar.gz
[[ $x == *.gz ]] && echo glob-match
[[ $x == "*.gz" ]] || echo quoted-no-match
[[ $x =~ ^([a-z]+)\.(tar)\.(gz)$ ]] && echo "re: ${BASH_REMATCH[1]} ${BASH_REMATCH[3]}"
[[ -f file.txt && -d dir && ! -e missing ]] && echo files-ok
[[ -z "" && -n x ]] && echo zn
[[ abc < abd ]] && echo less
[[ 10 -gt 9 ]] && echo num
[[ -f missing || -d dir ]] && echo or-ok
[[ $undefined == "" ]] && echo unset-empty
[[ x == y ]]; echo "status $?"
if [[ $(ls | wc -l) -eq 2 ]]; then echo two-entries; fi
