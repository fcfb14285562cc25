# covers: globbing: * ? [..], no match left literal, nullglob, failglob off, dotglob, globstar, extglob
# setup: touch a.txt b.txt c.log .hidden; mkdir -p d/e; touch d/x.txt d/e/y.txt
echo *.txt
echo ?.log
echo [ab].*
echo *.none
shopt -s nullglob; echo "null: [" *.none "]"; shopt -u nullglob
echo *
shopt -s dotglob; echo *; shopt -u dotglob
shopt -s globstar; echo **/*.txt; shopt -u globstar
shopt -s extglob
echo !(*.txt); echo @(a|c).*
shopt -u extglob
for f in *.txt; do mv "$f" "${f%.txt}.md"; done
ls
set -f; echo *.md; set +f
