# covers: case/esac with globs, alternatives, character classes, ;& fallthrough and ;;& continue
for w in apple Banana cherry 42 x.tar.gz ''; do
    case $w in
        a*) echo "$w: starts with a" ;;
        [A-Z]*) echo "$w: capital" ;;
        *[0-9]) echo "$w: ends in digit" ;;
        *.tar.gz|*.tgz) echo "$w: tarball" ;;
        '') echo "empty" ;;
        *) echo "$w: other" ;;
    esac
done
case cherry in
    c*) echo fall1 ;&
    zzz) echo fall2 ;;
    *) echo no ;;
esac
case abc in
    a*) echo test1 ;;&
    *c) echo test2 ;;&
    x*) echo no ;;
esac
case $(echo hi | tr a-z A-Z) in HI) echo upper;; esac
