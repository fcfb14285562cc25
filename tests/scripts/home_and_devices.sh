# covers: files written under $HOME (compared too), ~ expansion, writes to /dev/stderr, /dev/stdout and /dev/null
echo "in home" > ~/note.txt
mkdir -p ~/.config/app && echo "k=v" > "$HOME/.config/app/conf"
cat ~/note.txt
ls -A ~ | sort
ls -d . > /dev/stderr
/bin/echo "via /dev/stdout" > /dev/stdout
cat /dev/null > empty.txt
echo discarded > /dev/null
