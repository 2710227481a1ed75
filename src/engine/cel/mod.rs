//! CEL, the expression language of Kubernetes' ValidatingAdmissionPolicy: the
//! compiler and the bounded evaluator behind the `cel` rule
//! (`super::rules::cel`).
//!
//! Expressions are parsed once, at policy load, by the `cel` crate (through
//! `kube_cel`'s re-export, so the Kubernetes libraries and the interpreter are
//! the same version), checked for names that cannot resolve, and rewritten so
//! that evaluation is bounded: every comprehension step (`all`, `exists`,
//! `exists_one`, `map`, `filter`) and every function or operator argument is
//! charged against a per-evaluation budget of [`STEP_LIMIT`] steps, and
//! against the review's budget of [`REVIEW_STEP_LIMIT`] steps that all the
//! `cel` rules judging one object share. The interpreter has no limit of its
//! own; the budgets live in thread-locals (evaluation is synchronous, on one
//! thread) and an exceeded one is sticky, so it cannot be hidden by `||` or
//! `&&` absorbing the error.

mod value;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, HashMap};
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use kube_cel::KubeCelExt;
use kube_cel::cel::common::ast::{CallExpr, EntryExpr, Expr, IdedExpr, LiteralValue, operators};
use kube_cel::cel::extractors::{Arguments, This};
use kube_cel::cel::objects::{Key, Map};
use kube_cel::cel::parser::Parser;
use kube_cel::cel::{Context, ExecutionError, FunctionContext, ResolveResult, Value};

pub use value::{from_json, map, object_value, string};

/// The steps one evaluation of a rule may take (its variables, validations and
/// message expressions together). A comprehension step costs one; a
/// function or operator argument costs its size (one per value in it,
/// strings one per 64 bytes). A cut-off evaluation takes about 1.2 s in a
/// debug build here, 0.3 s in release (BENCHMARKS.md, `cel/evaluate cut-off-at-budget`).
pub const STEP_LIMIT: u64 = 1_000_000;

/// The steps all the `cel` rules of one review may take together (within a
/// [`ReviewBudget`]), so that many costly rules cannot together hold a
/// review past the webhook's timeout: about 1.5 s in release. Rules evaluated
/// after it is spent fail closed at once.
pub const REVIEW_STEP_LIMIT: u64 = 5_000_000;

/// The deepest nesting the parser accepts.
pub const MAX_DEPTH: u16 = 48;

/// The longest expression accepted, in bytes.
pub const MAX_EXPRESSION_BYTES: usize = 5_000;

/// The variables VAP gives expressions, and portcullis too.
pub const VARIABLES: [&str; 5] = ["object", "oldObject", "request", "namespaceObject", "variables"];

const STEP: &str = "@portcullis_step";
const CHARGE: &str = "@portcullis_charge";

/// A compiled expression: its source and its rewritten syntax tree.
#[derive(Clone, Debug)]
pub struct Expression {
    source: String,
    ast: IdedExpr,
    /// The names read as `variables.<name>`.
    variables: BTreeSet<String>,
}

/// Why an expression does not compile: 1-based line and column within it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompileError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl std::fmt::Display for CompileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line > 1 {
            write!(f, "line {}, ", self.line)?;
        }
        write!(f, "column {}: {}", self.column, self.message)
    }
}

impl Expression {
    /// Parses and checks an expression; never panics.
    pub fn compile(source: &str) -> Result<Expression, CompileError> {
        if source.len() > MAX_EXPRESSION_BYTES {
            return Err(CompileError {
                line: 1,
                column: 1,
                message: format!("the expression is longer than {MAX_EXPRESSION_BYTES} bytes"),
            });
        }
        if source.trim().is_empty() {
            return Err(CompileError { line: 1, column: 1, message: "the expression is empty".into() });
        }
        let parsed = std::panic::catch_unwind(|| Parser::new().max_recursion_depth(MAX_DEPTH).parse(source));
        let mut ast = match parsed {
            Ok(Ok(ast)) => ast,
            Ok(Err(errors)) => {
                let first = errors.errors.first();
                let (line, column) = first.map_or((1, 1), |e| (e.pos.0.max(1) as usize, e.pos.1.max(1) as usize));
                let message = first.map_or_else(|| "syntax error".to_owned(), |e| e.msg.clone());
                return Err(CompileError { line, column, message });
            }
            Err(_) => {
                return Err(CompileError { line: 1, column: 1, message: "the expression cannot be parsed".into() });
            }
        };
        let mut check = Check { source, scopes: Vec::new(), variables: BTreeSet::new(), error: None };
        check.walk(&mut ast);
        match check.error {
            Some(error) => Err(error),
            None => Ok(Expression { source: source.to_owned(), ast, variables: check.variables }),
        }
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// The names this expression reads as `variables.<name>`.
    pub fn variables(&self) -> &BTreeSet<String> {
        &self.variables
    }

    /// The 1-based line and column of the first `variables.<name>` (or
    /// `variables['<name>']`) in the source.
    pub fn position_of_variable(&self, name: &str) -> (usize, usize) {
        [format!("variables.{name}"), format!("variables['{name}']"), format!("variables[\"{name}\"]")]
            .iter()
            .filter_map(|token| self.source.find(token.as_str()).map(|offset| (offset, token)))
            .min()
            .map_or((1, 1), |(_, token)| position(&self.source, token))
    }
}

/// Walks the syntax tree: rejects what the interpreter cannot evaluate or
/// what cannot resolve, and inserts the step charges.
struct Check<'a> {
    source: &'a str,
    /// Comprehension variables in scope.
    scopes: Vec<String>,
    variables: BTreeSet<String>,
    error: Option<CompileError>,
}

impl Check<'_> {
    fn fail(&mut self, token: &str, message: String) {
        if self.error.is_none() {
            let (line, column) = position(self.source, token);
            self.error = Some(CompileError { line, column, message });
        }
    }

    fn walk(&mut self, node: &mut IdedExpr) {
        if self.error.is_some() {
            return;
        }
        match &mut node.expr {
            Expr::Unspecified => self.fail("", "the expression cannot be evaluated".into()),
            Expr::Struct(structure) => {
                let name = structure.type_name.clone();
                self.fail(&name, format!("message construction ({name}{{...}}) is not supported"))
            }
            Expr::Literal(_) => {}
            Expr::Ident(name) => {
                if !VARIABLES.contains(&name.as_str()) && !self.scopes.iter().any(|s| s == name) {
                    let name = name.clone();
                    let known = VARIABLES.join(", ");
                    let message = match name.as_str() {
                        "params" | "authorizer" => {
                            format!("`{name}` is not available in portcullis (variables: {known})")
                        }
                        _ => format!("undeclared reference to `{name}` (variables: {known})"),
                    };
                    self.fail(&name, message);
                }
            }
            Expr::Select(select) => {
                if let Expr::Ident(base) = &select.operand.expr
                    && base == "variables"
                    && !self.scopes.iter().any(|s| s == "variables")
                {
                    self.variables.insert(select.field.clone());
                }
                self.walk(&mut select.operand);
            }
            Expr::List(list) => list.elements.iter_mut().for_each(|e| self.walk(e)),
            Expr::Map(map) => {
                for entry in &mut map.entries {
                    match &mut entry.expr {
                        EntryExpr::MapEntry(entry) => {
                            self.walk(&mut entry.key);
                            self.walk(&mut entry.value);
                        }
                        EntryExpr::StructField(field) => self.walk(&mut field.value),
                    }
                }
            }
            Expr::Call(call) => {
                // `variables['name']`: the same read as `variables.name`.
                if call.func_name == operators::INDEX
                    && let [base, key] = call.args.as_slice()
                    && matches!(&base.expr, Expr::Ident(name) if name == "variables")
                    && !self.scopes.iter().any(|s| s == "variables")
                    && let Expr::Literal(LiteralValue::String(name)) = &key.expr
                {
                    self.variables.insert(name.inner().to_owned());
                }
                if let Some(target) = call.target.as_deref_mut() {
                    // `sets.contains(...)`: a namespaced function, not a variable.
                    if !matches!(&target.expr, Expr::Ident(name) if !VARIABLES.contains(&name.as_str())
                        && !self.scopes.iter().any(|s| s == name))
                    {
                        self.walk(target);
                    }
                }
                call.args.iter_mut().for_each(|a| self.walk(a));
                charge_arguments(call);
            }
            Expr::Comprehension(comprehension) => {
                self.walk(&mut comprehension.iter_range);
                self.walk(&mut comprehension.accu_init);
                self.scopes.push(comprehension.iter_var.clone());
                if let Some(second) = &comprehension.iter_var2 {
                    self.scopes.push(second.clone());
                }
                self.scopes.push(comprehension.accu_var.clone());
                self.walk(&mut comprehension.loop_cond);
                self.walk(&mut comprehension.loop_step);
                self.walk(&mut comprehension.result);
                self.scopes.truncate(self.scopes.len() - 1 - comprehension.iter_var2.is_some() as usize - 1);
                let condition = std::mem::take(&mut comprehension.loop_cond);
                let accumulator = IdedExpr { id: 0, expr: Expr::Ident(comprehension.accu_var.clone()) };
                comprehension.loop_cond = IdedExpr {
                    id: condition.id,
                    expr: Expr::Call(CallExpr {
                        func_name: STEP.into(),
                        target: None,
                        args: vec![accumulator, condition],
                    }),
                };
            }
        }
    }
}

/// Wraps the arguments of a function or operator (and a method's target) in a
/// charge of their size. The short-circuiting operators, the conditional and
/// indexing are left alone: they do not walk their operands.
fn charge_arguments(call: &mut CallExpr) {
    let free = [
        operators::LOGICAL_AND,
        operators::LOGICAL_OR,
        operators::LOGICAL_NOT,
        operators::CONDITIONAL,
        operators::NOT_STRICTLY_FALSE,
        operators::INDEX,
        operators::OPT_INDEX,
        operators::OPT_SELECT,
    ];
    if free.contains(&call.func_name.as_str()) {
        return;
    }
    let wrap = |expr: &mut IdedExpr| {
        let inner = std::mem::take(expr);
        *expr = IdedExpr {
            id: inner.id,
            expr: Expr::Call(CallExpr { func_name: CHARGE.into(), target: None, args: vec![inner] }),
        };
    };
    call.args.iter_mut().for_each(wrap);
    if let Some(target) = call.target.as_deref_mut()
        && !matches!(target.expr, Expr::Ident(_))
    {
        wrap(target);
    }
}

/// The 1-based line and column of the first occurrence of `token` in `source`
/// (line 1, column 1 when it is not found).
fn position(source: &str, token: &str) -> (usize, usize) {
    let offset = if token.is_empty() { None } else { source.find(token) };
    let Some(offset) = offset else { return (1, 1) };
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Which budget an evaluation ran out of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// The rule's own, [`STEP_LIMIT`].
    Rule,
    /// The one all the rules of the review share, [`REVIEW_STEP_LIMIT`].
    Review,
}

thread_local! {
    /// Steps left in the current evaluation.
    static LEFT: Cell<u64> = const { Cell::new(STEP_LIMIT) };
    /// Steps left in the current review; unbounded outside a [`ReviewBudget`].
    static REVIEW_LEFT: Cell<u64> = const { Cell::new(u64::MAX) };
    /// The steps the current review was given (for its messages).
    static REVIEW_LIMIT: Cell<u64> = const { Cell::new(REVIEW_STEP_LIMIT) };
    /// Set when whoever waits for the current review no longer does
    /// ([`ReviewBudget::cancelled_by`]): the rest of its budget is void.
    static CANCELLED: RefCell<Option<Arc<AtomicBool>>> = const { RefCell::new(None) };
    /// The budget the current evaluation ran out of (sticky until the next starts).
    static EXCEEDED: Cell<Option<Limit>> = const { Cell::new(None) };
}

fn cancelled() -> bool {
    CANCELLED.with_borrow(|flag| flag.as_ref().is_some_and(|flag| flag.load(Ordering::Relaxed)))
}

fn charge(steps: u64) -> Result<(), ExecutionError> {
    let (left, review_left) = (LEFT.get(), REVIEW_LEFT.get());
    let exceeded = match EXCEEDED.get() {
        Some(limit) => Some(limit),
        None if steps > left => Some(Limit::Rule),
        None if steps > review_left || cancelled() => Some(Limit::Review),
        None => None,
    };
    if let Some(limit) = exceeded {
        EXCEEDED.set(Some(limit));
        LEFT.set(0);
        if limit == Limit::Review {
            REVIEW_LEFT.set(0);
        }
        return Err(ExecutionError::function_error("cost", "the evaluation exceeded its cost limit"));
    }
    LEFT.set(left - steps);
    REVIEW_LEFT.set(review_left - steps);
    Ok(())
}

/// The budget the `cel` rules of one review share, from [`ReviewBudget::of`]
/// until it is dropped (then unbounded again, as for one rule evaluated alone).
/// Not `Send`: it is this thread's.
pub struct ReviewBudget {
    before: (u64, u64),
    _thread: PhantomData<*const ()>,
}

impl ReviewBudget {
    /// Starts a review's budget of `steps` steps on this thread.
    pub fn of(steps: u64) -> ReviewBudget {
        let before = (REVIEW_LEFT.replace(steps), REVIEW_LIMIT.replace(steps));
        ReviewBudget { before, _thread: PhantomData }
    }

    /// Whether the budget is spent: a rule ran out of it (or, rarely, used
    /// it to the last step).
    pub fn spent(&self) -> bool {
        REVIEW_LEFT.get() == 0
    }

    /// The steps the review on this thread was given.
    pub fn limit() -> u64 {
        REVIEW_LIMIT.get()
    }

    /// Runs `f` with the reviews on this thread cut off (as if their budget
    /// were spent) from the moment `cancelled` is set: for an evaluation
    /// whose answer nobody waits for any longer.
    pub fn cancelled_by<R>(cancelled: Arc<AtomicBool>, f: impl FnOnce() -> R) -> R {
        /// Puts the thread back as it was (a cut-off spends the budget).
        struct Reset(u64);
        impl Drop for Reset {
            fn drop(&mut self) {
                CANCELLED.set(None);
                REVIEW_LEFT.set(self.0);
            }
        }
        CANCELLED.set(Some(cancelled));
        let _reset = Reset(REVIEW_LEFT.get());
        f()
    }
}

impl Drop for ReviewBudget {
    fn drop(&mut self) {
        REVIEW_LEFT.set(self.before.0);
        REVIEW_LIMIT.set(self.before.1);
    }
}

/// The size charged for a value: one per value in it (the interpreter copies
/// a value whole wherever it is passed), strings and bytes one per 64 bytes.
fn size(value: &Value) -> u64 {
    match value {
        Value::List(list) => 1 + list.iter().map(size).sum::<u64>(),
        Value::Map(map) => 1 + map.map.values().map(size).sum::<u64>(),
        Value::String(text) => 1 + text.len() as u64 / 64,
        Value::Bytes(bytes) => 1 + bytes.len() as u64 / 64,
        _ => 1,
    }
}

/// Charges the size of a string of `bytes` bytes about to be built.
fn charge_output(bytes: usize) -> Result<(), ExecutionError> {
    charge(1 + bytes as u64 / 64)
}

/// kube-cel's `<string>.replace(<from>, <to>[, <n>])`, charged for its result
/// first: an empty `from` matches between every two characters, so the result
/// can be the string's length times `to`'s.
fn bounded_replace(This(this): This<Arc<String>>, Arguments(args): Arguments) -> ResolveResult {
    let (Some(Value::String(from)), Some(Value::String(to))) = (args.first(), args.get(1)) else {
        return Err(ExecutionError::function_error("replace", "expected string argument"));
    };
    let limit = match args.get(2) {
        Some(Value::Int(n)) => (*n).max(0) as usize,
        _ => usize::MAX,
    };
    let matches = if from.is_empty() { this.chars().count() + 1 } else { this.matches(from.as_str()).count() };
    charge_output(this.len().saturating_add(matches.min(limit).saturating_mul(to.len())))?;
    let result = match args.get(2) {
        Some(Value::Int(_)) => this.replacen(from.as_str(), to.as_str(), limit),
        _ => this.replace(from.as_str(), to.as_str()),
    };
    Ok(Value::String(Arc::new(result)))
}

/// kube-cel's `<list>.join([<separator>])`, charged for its result first (a
/// long separator repeats once per item).
fn bounded_join(This(this): This<Arc<Vec<Value>>>, Arguments(args): Arguments) -> ResolveResult {
    let separator = match args.first() {
        Some(Value::String(separator)) => separator.as_str(),
        _ => "",
    };
    let parts: Vec<String> = this
        .iter()
        .map(|value| match value {
            Value::String(text) => text.to_string(),
            other => format!("{other:?}"),
        })
        .collect();
    let length = parts.iter().map(String::len).sum::<usize>();
    charge_output(length.saturating_add(separator.len().saturating_mul(parts.len().saturating_sub(1))))?;
    Ok(Value::String(Arc::new(parts.join(separator))))
}

fn step(ftx: &FunctionContext) -> Result<Value, ExecutionError> {
    let [_accumulator, condition] = ftx.args else { return Err(ftx.error("expects two arguments")) };
    charge(1)?;
    match ftx.ptx.resolve(condition)? {
        Value::Bool(value) => Ok(Value::Bool(value)),
        _ => Err(ExecutionError::NoSuchOverload),
    }
}

fn charged(ftx: &FunctionContext) -> Result<Value, ExecutionError> {
    let [argument] = ftx.args else { return Err(ftx.error("expects one argument")) };
    let value = ftx.ptx.resolve(argument)?;
    charge(size(&value))?;
    Ok(value)
}

thread_local! {
    /// The functions every evaluation sees: CEL's standard ones, the
    /// Kubernetes libraries and the two step charges. Built once per thread
    /// (the interpreter's context is neither `Send` nor `Sync`).
    static FUNCTIONS: Context<'static> = {
        let mut context = Context::default().with_all();
        context.add_function(STEP, step);
        context.add_function(CHARGE, charged);
        // The two library functions whose result can be far larger than their
        // arguments (the charges above read arguments): the same functions,
        // charged for their result before they build it.
        context.add_function("replace", bounded_replace);
        context.add_function("join", bounded_join);
        context
    };
}

/// How one expression came out.
#[derive(Clone, Debug, PartialEq)]
pub enum Evaluated {
    Value(Value),
    /// It could not be evaluated (a missing field, a wrong type, ...).
    Error(String),
    /// The evaluation ran out of steps: its own or the review's.
    CostExceeded(Limit),
}

/// One evaluation: the activation of the variables and the step budget.
pub struct Evaluation {
    variables: [(&'static str, Value); 4],
}

impl Evaluation {
    /// Starts an evaluation with a fresh budget of [`STEP_LIMIT`] steps.
    pub fn new(object: Value, old_object: Value, request: Value, namespace_object: Value) -> Evaluation {
        LEFT.set(STEP_LIMIT);
        EXCEEDED.set(None);
        let variables = [
            ("object", object),
            ("oldObject", old_object),
            ("request", request),
            ("namespaceObject", namespace_object),
        ];
        Evaluation { variables }
    }

    /// Runs `f` with a [`Session`] over the variables: the interpreter's
    /// context is built once (it converts each variable's value into its own
    /// representation, a walk of the whole object), then every expression of
    /// the rule is evaluated against it.
    pub fn run<R>(self, f: impl FnOnce(&mut Session<'_>) -> R) -> R {
        FUNCTIONS.with(|functions| {
            let mut context = functions.new_inner_scope();
            for (name, value) in self.variables {
                // Values from JSON only: the conversion cannot fail.
                context.add_variable_from_value(name, value);
            }
            context.add_variable_from_value("variables", Value::Map(Map { map: Arc::new(HashMap::new()) }));
            f(&mut Session { context, declared: HashMap::new() })
        })
    }
}

/// The expressions of one evaluation share its context and budget.
pub struct Session<'a> {
    context: Context<'a>,
    declared: HashMap<Key, Value>,
}

impl Session<'_> {
    /// Evaluates one expression against the activation.
    pub fn evaluate(&self, expression: &Expression) -> Evaluated {
        if let Some(limit) = EXCEEDED.get() {
            return Evaluated::CostExceeded(limit);
        }
        // The interpreter is not ours: a panic in it (a last resort; the
        // compiler rejects what is known to panic) must not take a review down.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.context.resolve(&expression.ast)));
        let result = match result {
            Ok(result) => result,
            Err(_) => return Evaluated::Error("the interpreter failed on this expression".into()),
        };
        if let Some(limit) = EXCEEDED.get() {
            return Evaluated::CostExceeded(limit);
        }
        match result {
            Ok(value) => match charge(size(&value)) {
                Ok(()) => Evaluated::Value(value),
                Err(_) => Evaluated::CostExceeded(EXCEEDED.get().unwrap_or(Limit::Rule)),
            },
            Err(error) => Evaluated::Error(error.to_string()),
        }
    }

    /// Makes `variables.<name>` available to the expressions evaluated next;
    /// `Err` when the interpreter cannot hold the value as a variable.
    pub fn declare(&mut self, name: &str, value: Value) -> Result<(), String> {
        self.declared.insert(Key::String(Arc::new(name.to_owned())), value);
        let variables = Value::Map(Map { map: Arc::new(self.declared.clone()) });
        let context = &mut self.context;
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            context.add_variable_from_value("variables", variables)
        }))
        .map_err(|_| format!("its value cannot be a variable ({})", name))
    }
}

#[cfg(test)]
mod tests;
